"""Pure rules, no I/O: header and request-head rules, cookies, redirects, routing, scopes, templates, pages."""
