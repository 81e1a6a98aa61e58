"""A short, human description of a user agent string ("Firefox 132 on Windows").

Not ua-parser: its thousand-odd regular expressions (and their yearly updates)
name every device and bot, while the devices list and the sign-in emails need a
browser family, its major version and an operating system, for which the few
checks below suffice; a wrong guess here only words a label, it decides nothing.
"""

import re

# Order matters: many browsers also claim to be Safari or Chrome.
_BROWSERS = [
    ("Edge", re.compile(r"Edg(?:e|A|iOS)?/(\d+)")),
    ("Opera", re.compile(r"(?:OPR|Opera)/(\d+)")),
    ("Samsung Internet", re.compile(r"SamsungBrowser/(\d+)")),
    ("Firefox", re.compile(r"(?:Firefox|FxiOS)/(\d+)")),
    ("Chrome", re.compile(r"(?:Chrome|CriOS)/(\d+)")),
    ("Safari", re.compile(r"Version/(\d+)[\d.]* (?:Mobile/\S+ )?Safari/")),
]
_SYSTEMS = [
    ("iOS", re.compile(r"iPhone|iPad|iPod")),
    ("Android", re.compile(r"Android")),
    ("ChromeOS", re.compile(r"CrOS")),
    ("Windows", re.compile(r"Windows")),
    ("macOS", re.compile(r"Mac OS X|Macintosh")),
    ("Linux", re.compile(r"Linux")),
]


def describe_user_agent(user_agent: str, *, raw_fallback: bool = True) -> str:
    """The browser and system, else the start of the header itself, else "Unknown device".

    ``raw_fallback=False`` for emails: a client chooses its header, and its text
    must never reach a mail as if we had written it.
    """
    browser = next(
        (f"{name} {match.group(1)}" for name, pattern in _BROWSERS if (match := pattern.search(user_agent))),
        None,
    )
    system = next((name for name, pattern in _SYSTEMS if pattern.search(user_agent)), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser:
        return browser
    if system:
        return system
    return user_agent[:60] if user_agent and raw_fallback else "Unknown device"
