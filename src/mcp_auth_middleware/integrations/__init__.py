"""Optional glue for the MCP SDK, FastMCP and FastAPI; none of them is a hard dependency."""
