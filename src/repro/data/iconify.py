"""Iconify's JSON icon sets (used by the Fluent emoji styles and by the icon corpus): one icon as a standalone SVG."""

from __future__ import annotations

import re

_ICON_BOX = ("left", "top", "width", "height")
_ICON_DEFAULTS = {"left": 0, "top": 0, "width": 16, "height": 16}  # Iconify's defaults where a set gives none


def _num(x) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def iconify_svg(icon_set: dict, name: str) -> str | None:
    """A standalone SVG document of icon `name` of a parsed Iconify JSON set, or None if the set has no such icon.
    Aliases are resolved (their own box overrides the parent's; flips and rotations combine) and the box falls back
    to the set's width/height/left/top, then Iconify's defaults; transformations follow @iconify/utils' iconToSVG."""
    icons, aliases = icon_set.get("icons") or {}, icon_set.get("aliases") or {}
    chain: list[dict] = []
    while name not in icons:
        alias = aliases.get(name)
        if not alias or "parent" not in alias or len(chain) > len(aliases):
            return None
        chain.append(alias)
        name = alias["parent"]
    chain.append(icons[name])
    box = {k: icon_set.get(k, v) for k, v in _ICON_DEFAULTS.items()}
    h_flip = v_flip = False
    rotate = 0
    for item in reversed(chain):  # the icon, then its aliases from the outermost parent to `name`
        box.update({k: item[k] for k in _ICON_BOX if k in item})
        h_flip ^= bool(item.get("hFlip"))
        v_flip ^= bool(item.get("vFlip"))
        rotate += int(item.get("rotate", 0))
    left, top, width, height = (float(box[k]) for k in _ICON_BOX)
    body, transforms = icons[name]["body"], []
    if h_flip and v_flip:
        rotate += 2
    elif h_flip:
        transforms.append(f"translate({_num(width + left)} {_num(-top)}) scale(-1 1)")
        left = top = 0.0
    elif v_flip:
        transforms.append(f"translate({_num(-left)} {_num(height + top)}) scale(1 -1)")
        left = top = 0.0
    rotate %= 4
    if rotate == 1:
        transforms.insert(0, f"rotate(90 {_num(height / 2 + top)} {_num(height / 2 + top)})")
    elif rotate == 2:
        transforms.insert(0, f"rotate(180 {_num(width / 2 + left)} {_num(height / 2 + top)})")
    elif rotate == 3:
        transforms.insert(0, f"rotate(-90 {_num(width / 2 + left)} {_num(width / 2 + left)})")
    if rotate % 2:
        left, top, width, height = top, left, height, width
    if transforms:
        body = f'<g transform="{" ".join(transforms)}">{body}</g>'
    xlink = ' xmlns:xlink="http://www.w3.org/1999/xlink"' if "xlink:" in body else ""
    return (f'<svg xmlns="http://www.w3.org/2000/svg"{xlink} width="{_num(width)}" height="{_num(height)}" '
            f'viewBox="{_num(left)} {_num(top)} {_num(width)} {_num(height)}">{body}</svg>')


def monochrome_black(svg: str) -> str:
    """Monochrome icons draw in `currentColor`; outside a web page that must be a colour: black."""
    return re.sub("currentcolor", "#000", svg, flags=re.I)
