"""`python -m mcp_auth_middleware.cli`, as the installed `mcp-oauth-middleware` command."""

import sys

from . import main

sys.exit(main())
