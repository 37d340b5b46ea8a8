"""Drawing: the sidebar panel and the add-on preferences (no logic of their own)."""
