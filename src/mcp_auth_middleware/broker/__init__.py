"""The broker (issue #33, under way): an authorization server of the MCP server's own, in front of
a provider MCP clients cannot use directly. Here so far, the pieces its state rests on: values
sealed with rotating secrets (`sealing`), records updated atomically in SQLite or Redis/Valkey
(`storage`), and refresh tokens rotated with reuse detection (`refresh_tokens`). Not yet a public
API: the endpoints, consent and the upstream leg are still to come."""
