"""The command palette's provider: every action of every mode, by name, with its key."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


def all_actions(app) -> list[tuple[str, str, str, str]]:
    """(mode or "app", action, description, explanation with the key) for everything bound to a key
    in the app and the screens of its generate and monitor modes."""
    from .screens.help import binding_rows

    app_class, actions = type(app), []
    for mode, bindings in (("generate", app_class.MODES["generate"].BINDINGS), ("monitor", app_class.MODES["monitor"].BINDINGS),
                           ("app", app_class.BINDINGS)):
        for binding in bindings:
            if binding.action.startswith("app.switch_mode"):
                continue
            keys = binding_rows([binding], app.get_key_display)[0][0]
            explanation = f"{binding.tooltip} (key: {keys})" if binding.tooltip else f"key: {keys}"
            actions.append((mode, binding.action, binding.description, explanation))
    return actions


class ActionsProvider(Provider):
    def _commands(self):
        for mode, action, description, keys in all_actions(self.app):
            title = description if mode == "app" else f"{mode.title()}: {description}"
            yield title, keys, partial(self.app.run_in_mode, mode, action)

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
