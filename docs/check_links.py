"""Check every link inside the built site: the page exists, and so does its anchor.

    python docs/check_links.py docs/_build/html

Links that leave the site (``http:``, ``https:``, ``mailto:``) are not followed
(CI has no network); ``sphinx-build -W -n`` already fails on unresolved
cross-references, and this catches what it does not check: raw links in the
Markdown pages, the gallery's and the theme's own links. Exit status 1 lists
every broken link with the page it is on.
"""

import os
import sys
from html.parser import HTMLParser
from urllib.parse import unquote, urldefrag, urlsplit


class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        elif tag in ("img", "script") and attrs.get("src"):
            self.links.append(attrs["src"])
        elif tag == "link" and attrs.get("href") and "stylesheet" in (attrs.get("rel") or ""):
            self.links.append(attrs["href"])


def check(root):
    """Return the broken links, ``[(page, link, why)]``, of the site built in ``root``."""
    pages = {}
    for folder, _, files in os.walk(root):
        if os.path.relpath(folder, root).split(os.sep)[0] in ("_static", "_sources", "_images"):
            continue  # the theme's templates and copies of the sources, not pages
        for name in files:
            if name.endswith(".html"):
                path = os.path.join(folder, name)
                parser = _Page()
                with open(path, encoding="utf-8") as fh:
                    parser.feed(fh.read())
                pages[os.path.normpath(path)] = parser
    broken = []
    for page, parser in sorted(pages.items()):
        for link in parser.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("//", "javascript:")):
                continue  # outside the site
            target, anchor = urldefrag(link)
            path = os.path.normpath(os.path.join(os.path.dirname(page), unquote(urlsplit(target).path)))
            if not target:
                path = page
            elif os.path.isdir(path):
                path = os.path.join(path, "index.html")
            if not os.path.exists(path):
                broken.append((page, link, "no such file"))
            elif anchor and path in pages and unquote(anchor) not in pages[path].ids:
                broken.append((page, link, "no such anchor"))
    return broken, len(pages)


def main(root):
    broken, n = check(root)
    for page, link, why in broken:
        print(f"{os.path.relpath(page, root)}: {link} ({why})")
    print(f"{n} pages, {len(broken)} broken links inside the site")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/_build/html"))
