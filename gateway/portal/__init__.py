"""Customer-side web pages: portal, pricing, checkout (WEB.md)."""
