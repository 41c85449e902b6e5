"""The broker (issue #33, under way): an authorization server of the MCP server's own, in front of
a provider MCP clients cannot use directly. Here so far, the pieces its state rests on: values
sealed with rotating secrets (`sealing`), records updated atomically in SQLite or Redis/Valkey
(`storage`), refresh tokens rotated with reuse detection (`refresh_tokens`), the leg to the
provider (`upstream`) and its tokens kept for tools (`provider_tokens`), the consent page and
the browser binding (`consent`). Not yet a public API: the endpoints MCP clients use, which put
these together, and the presets are still to come."""
