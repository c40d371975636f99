"""Write data/samples/datasheets/tb-120.pdf, the datasheet sample that comes as a PDF with a real text layer.

    python tests/data/make_datasheet_pdf.py [OUTPUT]

One section per page, its first line the page heading (`TB-120 USB-UART bridge board - Pin description`) as
finetune/documents/pages.py expects; the tables are drawn cells, so extract finds them by where their text stands.
The product is invented. The creation date is fixed so that rerunning the script gives the same bytes.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF

BOARD = "TB-120 USB-UART bridge board"
OVERVIEW = (
    "The TB-120 connects a microcontroller's UART to a USB host. It enumerates as a standard CDC serial port, so no "
    "driver is needed on current operating systems, and passes data at up to 3 Mbaud with hardware flow control. "
    "The board is powered from USB and supplies up to 150 mA at 3.3 V to the target."
)
FEATURES = [
    "USB 2.0 full speed, CDC class, no vendor driver",
    "Baud rates from 300 baud to 3 Mbaud, 5 to 8 data bits",
    "RTS and CTS flow control, 512-byte receive and transmit buffers",
    "Selectable 1.8 V, 3.3 V or 5 V logic levels",
    "Activity LEDs for receive and transmit",
]
# (title, note, column widths in mm, header, rows): cells short enough never to wrap.
TABLES = [
    ("Absolute maximum ratings", "Stresses beyond these limits may damage the board permanently.",
     [22, 70, 20, 20, 20],
     ["Symbol", "Parameter", "Min", "Max", "Unit"],
     [["VBUS", "USB supply voltage", "-0.3", "6.0", "V"],
      ["VIO", "Voltage on UART pins", "-0.3", "VCCIO + 0.3", "V"],
      ["IOUT3V3", "Current from the 3V3 pin", "", "200", "mA"],
      ["TSTG", "Storage temperature", "-40", "125", "°C"]]),
    ("Electrical characteristics", "TA = 25 °C, VBUS = 5.0 V unless noted otherwise.",
     [22, 50, 40, 16, 16, 16, 16],
     ["Symbol", "Parameter", "Conditions", "Min", "Typ", "Max", "Unit"],
     [["VBUS", "USB supply voltage", "", "4.4", "5.0", "5.5", "V"],
      ["IBUS", "Supply current", "3 Mbaud, both ways", "", "18", "25", "mA"],
      ["ISUSP", "Suspend current", "USB suspended", "", "90", "200", "µA"],
      ["V3V3", "3V3 output voltage", "IOUT = 100 mA", "3.20", "3.30", "3.40", "V"],
      ["fBAUD", "Baud rate", "", "300", "", "3000000", "baud"],
      ["VOH", "Output high voltage", "IOH = -4 mA", "VCCIO - 0.4", "", "", "V"]]),
    ("Pin description", "Pins are numbered from the USB connector end of the header.",
     [14, 24, 20, 120],
     ["Pin", "Name", "Type", "Description"],
     [["1", "GND", "Power", "Ground"],
      ["2", "CTS", "Input", "Clear to send, active low"],
      ["3", "VCCIO", "Power", "Logic level in; set by the level jumper"],
      ["4", "TXD", "Output", "UART data from the host"],
      ["5", "RXD", "Input", "UART data to the host"],
      ["6", "RTS", "Output", "Request to send, active low"],
      ["7", "3V3", "Power", "3.3 V output, up to 150 mA"]]),
]  # fmt: skip


def write(path: Path) -> None:
    pdf = FPDF()
    pdf.set_creation_date(datetime(2026, 1, 1, tzinfo=UTC))
    pdf.set_font("Helvetica", size=10)

    def page(title: str) -> None:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 13)
        pdf.cell(0, 8, f"{BOARD} - {title}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=10)
        pdf.ln(2)

    page("Overview")
    pdf.multi_cell(0, 5, OVERVIEW, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    for feature in FEATURES:
        pdf.cell(0, 6, f"- {feature}", new_x="LMARGIN", new_y="NEXT")
    for title, note, widths, header, rows in TABLES:
        page(title)
        pdf.multi_cell(0, 5, note, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        with pdf.table(col_widths=widths, width=sum(widths), align="LEFT", text_align="LEFT") as table:
            for cells in [header, *rows]:
                row = table.row()
                for cell in cells:
                    row.cell(cell)
    pdf.output(str(path))


if __name__ == "__main__":
    write(Path(sys.argv[1] if len(sys.argv) > 1 else "data/samples/datasheets/tb-120.pdf"))
