"""MkDocs hook: the docstrings' Sphinx roles (``:func:`encode```, ``:class:`~detector.api.Results```) as links.

mkdocstrings renders the docstrings as Markdown, where a role stays as text (":func:" before the code). Here each
becomes its code, linked by mkdocs-autorefs when the object is documented on the site: a dotted name as it is,
a bare name to the one object of this page whose id ends with it; the others stay plain code (``~`` keeps the
last part as the title, as in Sphinx).
"""

import re

ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj):<code>(~?)([\w.]+)</code>")


def on_page_content(html: str, page, **kwargs) -> str:
    ids = re.findall(r'id="([\w.]+)"', html)

    def link(match: re.Match) -> str:
        short, name = match[1], match[2]
        title = name.rsplit(".", 1)[-1] if short else name
        if "." not in name:
            here = [i for i in ids if i.endswith(f".{name}")]
            name = here[0] if len(here) == 1 else name
        return f'<autoref identifier="{name}" optional><code>{title}</code></autoref>'

    return ROLE.sub(link, html)
