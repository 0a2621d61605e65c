"""fashion-tui: the Textual app. `tui.cli` is the console entry; Textual loads only when the app starts."""
