"""What every web page shares: base layout, macros, vendored assets, CSRF (WEB.md)."""
