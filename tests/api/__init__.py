"""HTTP API tests (a package, so module names such as `test_render` do not clash)."""
