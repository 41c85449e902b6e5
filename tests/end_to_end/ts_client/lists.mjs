// What the MCP TypeScript SDK's 2.x client sees of a protected server's lists, in each protocol
// era: `node lists.mjs URL TOKEN ERA` (ERA: legacy for 2025-11-25 with sessions, 2026-07-28
// for the stateless protocol). Prints one JSON object: the era negotiated, every list (names
// and the scopes annotation), and what calling delete_notes gives.
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";

const [url, token, era] = process.argv.slice(2);
const KEY = "org.pypi.mcp-oauth-middleware/requiredScopes";
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client(
  { name: "lists", version: "1.0.0" },
  { versionNegotiation: { mode: era === "legacy" ? "legacy" : { pin: era } } },
);
await client.connect(transport);
const named = (entries, member) => entries.map((entry) => [entry[member], entry._meta?.[KEY] ?? null]);
const seen = {
  era: transport.protocolVersion ?? null, // what the transport sends as MCP-Protocol-Version
  tools: named((await client.listTools()).tools, "name"),
  prompts: named((await client.listPrompts()).prompts, "name"),
  resources: named((await client.listResources()).resources, "uri"),
};
try {
  await client.callTool({ name: "delete_notes", arguments: {} });
  seen.delete_notes = "called";
} catch (error) {
  seen.delete_notes = String(error);
}
console.log(JSON.stringify(seen));
await client.close();
