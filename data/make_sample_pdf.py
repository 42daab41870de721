"""Generate ``data/sample/compost-field-guide.pdf``, Docent's sample PDF.

Stdlib only: the PDF is written by hand with the standard Type1 Helvetica
fonts, WinAnsi-encoded text and a correct xref table, so it has a real text
layer that PDF extractors (e.g. pypdf) can read. The output is deterministic
(no timestamps or random IDs), so re-running the script yields identical bytes.

Usage: python data/make_sample_pdf.py [OUTPUT_PATH]
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "sample" / "compost-field-guide.pdf"
TITLE = "Compost Field Guide"
PAGE_W, PAGE_H, MARGIN = 612, 792, 72  # US Letter, 1-inch margins
FONT_SIZE, LEADING, WRAP = 11, 14, 88
FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /%s /Encoding /WinAnsiEncoding >>"

# Each page: (heading, body); paragraphs in a body are separated by blank lines.
PAGES: list[tuple[str, str]] = [
    (
        "Setting Up a Compost System",
        """
A three-bin system is the classic setup for a busy garden: one bin collects fresh
material, the second holds a batch that is actively decomposing, and the third holds
compost that is curing. Each bin is usually about 1 metre (3 feet) wide, and the
front boards slide out so the pile can be forked from one bin into the next.

Rotating tumblers suit small yards and people who find forking a heap hard work. A
tumbler should be filled to no more than about two-thirds of its capacity so the
contents can fall and mix when it is turned. Stop adding fresh scraps once a batch
is started, or the finished compost will always contain raw food.

Leaf mould is a separate, slower product made from autumn leaves alone. Leaves are
broken down mainly by fungi rather than bacteria, so a leaf pile stays cool and
takes 1 to 2 years to become dark, crumbly leaf mould. A simple cage of chicken wire
or a few punctured bin bags is enough to make it.
""",
    ),
    (
        "Worm Composting (Vermicomposting)",
        """
Worm bins use red wigglers (Eisenia fetida), not the earthworms found in garden
soil. Red wigglers live in surface litter, tolerate crowding and eat about half
their body weight per day, so 1 kg (2.2 lb) of worms can process roughly 0.5 kg (1.1
lb) of food scraps daily once the bin is established.

Keep the bin between 15 and 25 °C (59 to 77 °F), out of direct sun and protected
from frost. Bedding of shredded newspaper or cardboard, moistened to feel like a
damp sponge and 20 to 30 cm (8 to 12 inches) deep, gives the worms a place to live.
Bury food under the bedding and avoid citrus peel, onions, garlic, meat and dairy.

Worm castings are ready to harvest after 3 to 6 months. Push the finished material
to one side of the bin and put fresh bedding and food on the other side; within 2 to
3 weeks most worms will have moved across, and the castings can be scooped out with
few worms in them.
""",
    ),
    (
        "Using Finished Compost",
        """
As a mulch, spread 2 to 3 inches (5-8 cm) of compost over beds and around shrubs,
keeping it a few centimetres clear of stems and trunks. Earthworms will gradually
pull the compost down into the soil, so there is no need to dig it in.

When preparing a new vegetable bed, work 1 to 2 inches (2.5-5 cm) of compost into
the top 6 to 8 inches (15-20 cm) of soil. For a lawn, a top-dressing layer of 1/4 to
1/2 inch (6-12 mm) raked into the grass after aerating will improve thin, compacted
turf.

Compost is too rich and dense to use on its own as potting mix. Limit it to about 25
to 30 percent of a potting mix by volume, and screen it through a mesh of about 12
mm (1/2 inch) first to remove sticks and lumps.

To test whether compost is mature, sow cress seeds in a small pot of it next to a
pot of plain seed compost. If at least 80 percent as many seeds sprout and the
seedlings look healthy, the compost is ready to use.
""",
    ),
    (
        "Bokashi Fermentation",
        """
Bokashi is a Japanese method that ferments food scraps in an airtight bucket with
bran inoculated with lactic acid bacteria, yeasts and other microbes. Unlike a
compost heap, a bokashi bucket can take cooked food, small amounts of meat and
dairy, and it works indoors without smell when kept sealed.

Add scraps in layers, sprinkle a handful of bokashi bran over each layer and press
the contents down to squeeze out air. Drain the liquid from the tap every 2 to 3
days; diluted about 1:100 with water it can be used to water plants. Once the bucket
is full, leave it sealed for about 2 weeks.

Fermented bokashi is pickled rather than decomposed, so it must be finished in soil
or in a compost heap. Bury it in a trench at least 20 cm (8 inches) deep, and it
will break down within 2 to 4 weeks. Wait that long before planting directly into
the trench, because the fresh material is acidic.
""",
    ),
]


def pdf_string(text: str) -> bytes:
    """Encode text as a WinAnsi PDF literal string, escaping \\, ( and )."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"(" + escaped.encode("cp1252") + b")"


def page_stream(number: int, heading: str, body: str) -> bytes:
    """Build the content stream for one page: heading, wrapped paragraphs, footer."""
    top = PAGE_H - MARGIN
    ops = [b"BT", b"/F2 16 Tf", f"{MARGIN} {top} Td".encode(), pdf_string(heading) + b" Tj"]
    ops += [f"/F1 {FONT_SIZE} Tf {LEADING} TL".encode(), b"0 -10 Td"]
    for paragraph in body.strip().split("\n\n"):
        ops.append(b"T*")  # blank line before each paragraph
        for line in textwrap.wrap(" ".join(paragraph.split()), WRAP):
            ops.append(b"T* " + pdf_string(line) + b" Tj")
    ops.append(b"ET")
    footer = f"{TITLE} - page {number} of {len(PAGES)}"
    ops += [b"BT /F1 9 Tf", f"{MARGIN} {MARGIN // 2} Td".encode(), pdf_string(footer) + b" Tj ET"]
    return b"\n".join(ops) + b"\n"


def build_pdf() -> bytes:
    """Assemble all PDF objects, then append the xref table and trailer."""
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",  # Pages tree, filled in once the page object numbers are known
        *(FONT % name for name in (b"Helvetica", b"Helvetica-Bold")),  # objects 3 and 4
        b"<< /Title " + pdf_string(TITLE) + b" /Producer (Docent make_sample_pdf.py) >>",
    ]
    kids: list[str] = []
    for number, (heading, body) in enumerate(PAGES, start=1):
        stream = page_stream(number, heading, body)
        content_id, page_id = len(objects) + 1, len(objects) + 2
        objects.append(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"endstream")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] "
            f"/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> "
            f"/Contents {content_id} 0 R >>".encode()
        )
        kids.append(f"{page_id} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>".encode()

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for obj_id, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{obj_id} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref_at = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{off:010d} 00000 n \n".encode() for off in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 5 0 R >>\n".encode()
    out += f"startxref\n{xref_at}\n%%EOF\n".encode()
    return bytes(out)


def main(argv: list[str] | None = None) -> int:
    """Write the sample PDF to argv[0] or the default path; return an exit code."""
    args = sys.argv[1:] if argv is None else argv
    output = Path(args[0]) if args else DEFAULT_OUTPUT
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(build_pdf())
    print(f"wrote {output} ({len(PAGES)} pages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
