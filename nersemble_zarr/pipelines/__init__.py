"""Commands that turn one thing into another: download, convert, downscale, verify, check, info."""
