"""HTML pages: plain function views, one module per area. Logic lives in services and
in small helpers here; templates only display what they are given."""
