#!/usr/bin/env python3
"""Writes a one-page printable poster as a small, hand-made vector PDF.

    python3 scripts/make-poster.py OUT.pdf HEADLINE LINE [FOOTER]

The page is US Letter (612 x 792 pt): a dark blue (#0b2545) band across the top holding a small
"SPOTLIGHT ON SAFETY" label and the HEADLINE in large Helvetica-Bold, wrapped onto several lines
(white, the last line gold), a gold rule, then LINE in dark blue Helvetica on white, and FOOTER at
the bottom (by default "Spotlight on Safety · Defusing Difficult Encounters · VALOR Initiative
(demo)").

The text is real text in the PDF's 14 standard fonts (Helvetica and Helvetica-Bold, WinAnsiEncoding),
so nothing is embedded, the file stays a few KB, and it can be searched, copied and read aloud. Line
breaks and centring use the fonts' published AFM advance widths, tabled below. The output has no
dates or random IDs, so the same arguments always give the same bytes. Only the standard library is
used; called by scripts/make-demo-media.sh, which also checks the result with ghostscript.
"""
import sys

PAGE_W, PAGE_H = 612, 792
MARGIN = 66  # text is wrapped to PAGE_W - 2 * MARGIN = 480 pt

NAVY = (0x0B, 0x25, 0x45)
GOLD = (0xF2, 0xC1, 0x4E)
PALE = (0xD9, 0xE2, 0xEC)
WHITE = (0xFF, 0xFF, 0xFF)
SLATE = (0x33, 0x41, 0x5C)

# Advance widths (1/1000 em) of WinAnsi codes 32..126, from Adobe's Helvetica.afm and
# Helvetica-Bold.afm (code 39 is quotesingle and 96 is grave, as WinAnsiEncoding has them).
HELVETICA = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,  # space../
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,  # 0..?
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,  # @..O
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,  # P.._
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,  # `..o
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,  # p..~
]
HELVETICA_BOLD = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611,
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556,
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611,
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584,
]
# The few WinAnsi codes above 126 these posters may use: the same in both fonts.
EXTRA = {0xB7: 278, 0x96: 556, 0x97: 1000}  # middle dot, en dash, em dash
FONTS = {"F1": ("Helvetica", HELVETICA), "F2": ("Helvetica-Bold", HELVETICA_BOLD)}


def encode(text):
    """The text as WinAnsi (cp1252) bytes; refuses characters the standard fonts cannot show."""
    data = text.encode("cp1252")
    for b in data:
        if not (32 <= b <= 126 or b in EXTRA):
            sys.exit(f"make-poster.py: character {bytes([b]).decode('cp1252')!r} has no width in the table")
    return data


def width(text, font, size):
    table = FONTS[font][1]
    return sum(table[b - 32] if b <= 126 else EXTRA[b] for b in encode(text)) * size / 1000


def wrap(text, font, size, max_width):
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}" if line else word
        if line and width(trial, font, size) > max_width:
            lines.append(line)
            line = word
        else:
            line = trial
    return lines + [line]


def pdf_string(text):
    data = encode(text)
    return b"(" + data.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def rgb(c):
    return " ".join(f"{v / 255:.3f}" for v in c)


def poster(headline, line, footer):
    ops = []

    def text(s, font, size, y, color, x=None, spacing=0.0):
        w = width(s, font, size) + spacing * max(len(s) - 1, 0)
        x = (PAGE_W - w) / 2 if x is None else x
        ops.append(f"BT /{font} {size:g} Tf {spacing:g} Tc {rgb(color)} rg {x:.2f} {y:.2f} Td ".encode()
                   + pdf_string(s) + b" Tj ET")

    def rect(x, y, w, h, color):
        ops.append(f"{rgb(color)} rg {x:g} {y:g} {w:g} {h:g} re f".encode())

    usable = PAGE_W - 2 * MARGIN
    # The headline: as large as 80 pt, smaller only if a single word would not fit.
    size = 80
    while max(width(w, "F2", size) for w in headline.split()) > usable:
        size -= 2
    head = wrap(headline, "F2", size, usable)
    lead = size * 1.05

    label_y = PAGE_H - 78
    first = label_y - 34 - size * 0.72  # 0.72 em: Helvetica-Bold's cap height
    last = first - lead * (len(head) - 1)
    rule_y = last - 36
    band_bottom = rule_y - 44

    rect(0, band_bottom, PAGE_W, PAGE_H - band_bottom, NAVY)
    text("SPOTLIGHT ON SAFETY", "F2", 16, label_y, GOLD, spacing=3)
    for i, s in enumerate(head):
        text(s, "F2", size, first - i * lead, GOLD if i == len(head) - 1 else WHITE)
    rect((PAGE_W - 120) / 2, rule_y, 120, 6, GOLD)

    # The line, centred in the white space between the band and the footer.
    body_size = 28
    body = wrap(line, "F1", body_size, usable)
    body_lead = body_size * 1.3
    footer_top = 96
    block = body_size * 0.72 + body_lead * (len(body) - 1)
    top = footer_top + (band_bottom - footer_top + block) / 2
    for i, s in enumerate(body):
        text(s, "F1", body_size, top - body_size * 0.72 - i * body_lead, NAVY)

    rect(MARGIN, 72, usable, 1.5, GOLD)
    fsize = 11
    while width(footer, "F1", fsize) > usable:
        fsize -= 0.5
    text(footer, "F1", fsize, 50, SLATE)
    return b"\n".join(ops) + b"\n"


def pdf(content, title):
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] " % (PAGE_W, PAGE_H)
        + b"/Resources << /Font << /F1 5 0 R /F2 6 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"endstream",
    ]
    for name in ("F1", "F2"):
        objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /%s /Encoding /WinAnsiEncoding >>"
                       % FONTS[name][0].encode())
    # The Info title is PDFDocEncoding, which agrees with WinAnsi on ASCII: keep it to ASCII.
    objects.append(b"<< /Title " + pdf_string(title) + b" /Producer (scripts/make-poster.py) >>")

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, len(objects), xref)
    return bytes(out)


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    out, headline, line = sys.argv[1:4]
    footer = sys.argv[4] if len(sys.argv) == 5 else \
        "Spotlight on Safety \u00b7 Defusing Difficult Encounters \u00b7 VALOR Initiative (demo)"
    data = pdf(poster(headline, line, footer), f"Spotlight on Safety: {headline}")
    with open(out, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main()
