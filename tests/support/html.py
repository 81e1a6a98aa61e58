"""One HTML parser for the tests of pages: links, stylesheets, scripts, labels, every start tag with its
attributes, and each form with its controls and what a browser would submit from it."""

import re
from dataclasses import dataclass, field
from html import unescape
from html.parser import HTMLParser

CONTROLS = {"input", "select", "textarea"}
_NOT_SUBMITTED = {"submit", "button", "file", "image", "reset"}


@dataclass
class Form:
    attrs: dict
    inputs: list[dict] = field(default_factory=list)  # the attributes of each input, select and textarea
    fields: list[tuple[str, str]] = field(default_factory=list)  # what a browser submits, submit buttons aside

    def data(self) -> dict[str, list[str]]:
        """The submitted fields by name, each with its values in page order (the test client's form data)."""
        data: dict[str, list[str]] = {}
        for name, value in self.fields:
            data.setdefault(name, []).append(value)
        return data


class Page(HTMLParser):
    """A parsed page; ``parse_page(response)`` makes one."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []  # every start tag, attributes as written
        self.links: list[str] = []
        self.stylesheets: list[str] = []
        self.scripts = 0
        self.script_sources: list[str | None] = []  # each script's src (None: an inline script)
        self.label_targets: list[str] = []
        self.inputs: list[dict] = []  # every form control on the page, in or out of a form
        self.forms: list[Form] = []
        self.inputs_outside_forms: list[dict] = []
        self._form: Form | None = None
        self._select: str | None = None
        self._textarea: str | None = None

    def form(self, id: str) -> Form:
        """The form with this id."""
        (found,) = [form for form in self.forms if form.attrs.get("id") == id]
        return found

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))
        named = dict(attrs)
        if tag == "a" and "href" in named:
            self.links.append(named["href"])
        elif tag == "link" and named.get("rel") == "stylesheet":
            self.stylesheets.append(named.get("href", ""))
        elif tag == "script":
            self.scripts += 1
            self.script_sources.append(named.get("src"))
        elif tag == "label" and "for" in named:
            self.label_targets.append(named["for"])
        elif tag == "form":
            self._form = Form(named)
            self.forms.append(self._form)
        if tag in CONTROLS:
            self.inputs.append(named)
            (self._form.inputs if self._form is not None else self.inputs_outside_forms).append(named)
        if self._form is not None:
            self._submitted_by(tag, named, self._form)

    def _submitted_by(self, tag: str, named: dict, form: Form) -> None:
        name = named.get("name")
        if tag == "input" and name and "disabled" not in named:
            kind = named.get("type", "text")
            if kind in _NOT_SUBMITTED or (kind in ("checkbox", "radio") and "checked" not in named):
                return
            form.fields.append((name, named.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in named:
            form.fields.append((self._select, named.get("value", "")))
        elif tag == "textarea" and name:
            self._textarea = name
            form.fields.append((name, ""))

    def handle_data(self, data):
        if self._form is not None and self._textarea:
            name, value = self._form.fields[-1]
            self._form.fields[-1] = (name, value + data)

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def parse_page(response_or_html) -> Page:
    """Parse a test client response (or HTML text)."""
    html = response_or_html if isinstance(response_or_html, str) else response_or_html.content.decode()
    page = Page()
    page.feed(html)
    page.close()
    return page


def text_of(response_or_html) -> str:
    """The page's words as a reader sees them: tags dropped, entities decoded, white space collapsed."""
    html = response_or_html if isinstance(response_or_html, str) else response_or_html.content.decode()
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())
