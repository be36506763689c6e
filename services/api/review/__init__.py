"""The review page: server-rendered HTML (contact sheet, shot view, lineage graph) and a little JavaScript."""
