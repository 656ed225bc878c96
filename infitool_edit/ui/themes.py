"""Themes from files: each ``*.toml`` in ``themes/`` (and in a user folder)
becomes a ``textual.theme.Theme``. A file that cannot be read or names an
unknown field is reported and skipped; it never stops the editor opening."""

from __future__ import annotations

import dataclasses
import tomllib
from importlib.resources import files
from pathlib import Path

from textual.app import App
from textual.color import Color, ColorParseError
from textual.theme import Theme

DEFAULT_THEME = "infitool-dark"
_COLOR_FIELDS = ("primary", "secondary", "warning", "error", "success", "accent",
                 "foreground", "background", "surface", "panel", "boost")


def builtin_theme_folder() -> Path:
    return Path(str(files("infitool_edit.themes")))


def load_theme(path: Path) -> Theme:
    """One theme from a TOML file; raises ValueError with a one-line reason."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"{path.name}: {error}") from None
    known = {field.name for field in dataclasses.fields(Theme)}
    if unknown := sorted(set(data) - known):
        raise ValueError(f"{path.name}: unknown field {unknown[0]!r}")
    if not isinstance(data.get("name"), str) or not isinstance(data.get("primary"), str):
        raise ValueError(f"{path.name}: needs a 'name' and a 'primary' colour")
    for field in _COLOR_FIELDS:
        if field in data:
            try:
                Color.parse(data[field])
            except (ColorParseError, TypeError):
                raise ValueError(f"{path.name}: {field} is not a colour: {data[field]!r}") from None
    return Theme(**data)


def load_themes(*folders: Path) -> tuple[list[Theme], list[str]]:
    """All themes in ``folders`` (built-in first) and one error line per broken file."""
    themes: list[Theme] = []
    errors: list[str] = []
    for folder in (builtin_theme_folder(), *folders):
        for path in sorted(folder.glob("*.toml")):
            try:
                themes.append(load_theme(path))
            except ValueError as error:
                errors.append(f"theme skipped: {error}")
    return themes, errors


def install_themes(app: App, folders: tuple[Path, ...], wanted: str | None) -> list[str]:
    """Register the built-in themes and those in ``folders`` with ``app`` and
    switch to ``wanted`` (a broken file or an unknown name: the default
    theme). Called before the app runs, so its stylesheet is built once, in
    the right colours; returns the warnings, for the app to show."""
    themes, errors = load_themes(*folders)
    for theme in themes:
        app.register_theme(theme)
    warnings = list(errors)
    wanted = wanted or DEFAULT_THEME
    if wanted not in app.available_themes:
        warnings.append(f"unknown theme {wanted!r}; using {DEFAULT_THEME}")
        wanted = DEFAULT_THEME
    app.theme = wanted
    return warnings
