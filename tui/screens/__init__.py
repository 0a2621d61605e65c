"""The app's screens, one per mode (generate, monitor, help), and its dialogs."""
