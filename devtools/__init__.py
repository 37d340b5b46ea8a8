"""Developer tooling (not shipped in the extension zip): build, validate and install helpers."""
