"""The content domain: scripts (话术), their versions and rendering (issue 4 fills this in)."""
