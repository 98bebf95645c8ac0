"""WeChat Pay API v2 in the sandbox: XML calls signed with the API key, the
same trades, refunds, pages and fault rules as API v3 (README.md, "WeChat
Pay API v2"). Written apart from the shop's adapter, so that the two check
each other."""
