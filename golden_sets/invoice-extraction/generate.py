#!/usr/bin/env python3
"""Generate the synthetic invoice-extraction set: golden.jsonl (50) and train.jsonl (360) beside this file.

Each document (formal invoice, till receipt, invoice e-mail, online order receipt) is rendered from facts
chosen first: vendor, number, dates, line items, tax, totals, in one of ten locales with its own currency,
number and date formats. The reference is those facts, so it is correct by construction; check_example()
also confirms that every reference value can be read back from the text. Standard library only; the same
--seed gives byte-identical files.

    python golden_sets/invoice-extraction/generate.py [--seed 20261124] [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

N_GOLDEN, N_TRAIN = 50, 360
FIELDS = ["vendor", "invoice_number", "date", "due_date", "currency", "subtotal", "tax", "total"]
LAYOUTS = ["invoice", "receipt", "email", "online"]
MONTHS = "January February March April May June July August September October November December".split()

# --- Locales: currency, number format, date formats, tax, places ------------------------------------
# money: us 1,234.56 | dot 1.234,56 | fr 1 234,56 | ch 1'234.56 | in 1,23,456.78 | jp 12,400 (no decimals)
# symbols: templates for an amount; a "hint" is printed when the symbol alone does not name the currency.
LOCALES = {
    "US": dict(dial="+1", currency="USD", money="us", rate=1.0, symbols=["${}", "${}", "USD {}"],
               dates=["us_num", "us_long", "us_short", "iso"], tax=[("Sales Tax ({r}%)", [6.25, 7, 8.25, 8.875]),
               ("Tax ({r}%)", [6, 7.5])], suffix=["Inc.", "LLC", ""],
               cities=["Austin, TX 78701", "Portland, OR 97205", "Columbus, OH 43215", "Denver, CO 80202"]),
    "CA": dict(dial="+1", currency="CAD", money="us", rate=1.35, symbols=["C${}", "${} CAD", "${}"],
               hint="All amounts in Canadian dollars.", dates=["iso", "us_long"],
               tax=[("HST {r}%", [13, 15]), ("GST {r}%", [5])], suffix=["Inc.", "Ltd."],
               cities=["Toronto, ON M5V 2T6", "Halifax, NS B3J 1S9", "Ottawa, ON K1P 5J2"]),
    "UK": dict(dial="+44", currency="GBP", money="us", rate=0.8, symbols=["£{}", "£{}", "GBP {}"],
               dates=["dmy_slash", "long_dmy", "short_dmy", "iso"], tax=[("VAT @ {r}%", [20]), ("VAT ({r}%)", [20])],
               suffix=["Ltd", "Ltd", ""], cities=["Leeds LS1 4DY", "Bristol BS1 5TR", "Manchester M1 1AE"]),
    "IE": dict(dial="+353", currency="EUR", money="us", rate=0.92, symbols=["€{}"], dates=["dmy_slash", "long_dmy"],
               tax=[("VAT {r}%", [23, 13.5])], suffix=["Ltd", ""], cities=["Dublin 2", "Cork T12 X70A"]),
    "DE": dict(dial="+49", currency="EUR", money="dot", rate=0.92, symbols=["{} €", "€ {}", "EUR {}"],
               dates=["dmy_dot", "iso", "short_dmy"], tax=[("MwSt. {r}%", [19, 7]), ("VAT {r}%", [19])],
               suffix=["GmbH", "GmbH", ""], cities=["10115 Berlin", "80331 München", "50667 Köln"]),
    "FR": dict(dial="+33", currency="EUR", money="fr", rate=0.92, symbols=["{} €", "{} EUR"], dates=["dmy_slash", "long_dmy"],
               tax=[("TVA {r}%", [20, 10])], suffix=["SARL", "SAS", ""], cities=["75002 Paris", "69002 Lyon"]),
    "AU": dict(dial="+61", currency="AUD", money="us", rate=1.5, symbols=["A${}", "${} AUD", "${}"],
               hint="ABN 51 824 753 556. Prices in Australian dollars.", dates=["dmy_slash", "long_dmy"],
               tax=[("GST {r}%", [10])], suffix=["Pty Ltd", ""], cities=["Melbourne VIC 3000", "Sydney NSW 2000"]),
    "JP": dict(dial="+81", currency="JPY", money="jp", rate=150, symbols=["¥{}", "JPY {}"], dates=["ymd_slash", "iso"],
               tax=[("Consumption tax {r}%", [10, 8])], suffix=["Co., Ltd.", ""],
               cities=["Shibuya, Tokyo 150-0002", "Kita-ku, Osaka 530-0001"]),
    "CH": dict(dial="+41", currency="CHF", money="ch", rate=0.9, symbols=["CHF {}", "{} CHF"], dates=["dmy_dot", "iso"],
               tax=[("MWST {r}%", [8.1, 2.6])], suffix=["AG", "GmbH", ""], cities=["8001 Zürich", "3011 Bern"]),
    "IN": dict(dial="+91", currency="INR", money="in", rate=83, symbols=["₹{}", "Rs. {}", "INR {}"],
               dates=["dmy_dash", "dmy_slash", "short_dmy"], tax=[("GST {r}%", [18, 12])],
               suffix=["Pvt. Ltd.", ""], cities=["Bengaluru 560001", "Pune 411001", "Mumbai 400001"]),
}
STREETS = ["12 High Street", "48 Harbour Road", "7 Station Square", "230 Market Street", "15 Mill Lane",
           "91 King Street", "3 Riverside Walk", "560 Elm Avenue", "22 Church Road", "104 Park Place"]

# --- Vendors and what they sell: (name, item, low, high price in USD, unit) ----------------------------
CATEGORIES = {
    "grocery": (["Greenleaf Market", "Corner Fresh", "Hillside Grocers", "Daily Basket", "Harvest Lane Foods"],
                ["MILK 2L|1.2|2.4", "WHOLEMEAL BREAD|1.1|3.2", "BANANAS 1KG|0.9|2.1", "COFFEE BEANS 500G|6|11",
                 "EGGS 12PK|2.5|4.8", "CHEDDAR 400G|3|5.5", "OLIVE OIL 1L|5|9.5", "PASTA 500G|0.8|2.2",
                 "TOMATOES 500G|1.2|2.8", "APPLES 1KG|1.8|3.6", "YOGURT 4PK|1.5|3.4", "RICE 2KG|2.5|5",
                 "ORANGE JUICE 1L|1.6|3.9", "DISH SOAP|1.4|3.1"]),
    "cafe": (["Bean & Barrel", "Little Fox Coffee", "Morning Ritual Cafe", "Copper Kettle"],
             ["Flat White|3|4.8", "Latte|3.2|5.2", "Croissant|2.2|3.8", "Bagel w/ cream cheese|3|5.5",
              "Iced Tea|2.5|4", "Blueberry Muffin|2.4|3.9", "Club Sandwich|7|11", "Soup of the day|5|8"]),
    "hardware": (["Ironside Hardware", "Fix-It Depot", "Oakbeam Supplies", "Toolbox Corner"],
                 ["Wood screws 4x40 (200)|6|12", "Paint roller set|8|19", "Masking tape 50m|3|7",
                  "LED bulb E27 9W|3|8", "Extension cord 5m|9|22", "Drill bit set (13)|14|38",
                  "Wall plugs (100)|3|6", "Sandpaper assorted (10)|4|9", "Spirit level 60cm|11|27"]),
    "design": (["Brightline Studio", "Pixel & Pine Design", "Northlight Creative", "Foxglove Studio"],
               ["Logo design|400|2200", "Brand guidelines|600|2400", "Website mockups (5 pages)|900|3000",
                "Photo retouching (hours)|45|95|h", "Social media templates|250|900", "Packaging concept|700|2600"]),
    "it": (["Stackwise IT Services", "Bluepeak Consulting", "Kernel Systems", "Harborlight Networks"],
           ["Consulting (hours)|90|180|h", "Server maintenance - monthly|250|900", "Laptop setup|60|150|n",
            "Network audit|800|2400", "Backup licence (annual)|120|600", "On-site support (hours)|80|160|h"]),
    "print": (["Inkwell Printers", "QuickPress Print Shop", "Paperboat Print Co"],
              ["Business cards (500)|35|90", "Flyers A5 (1000)|80|220", "Roll-up banner|90|260|n",
               "Posters A2 (20)|60|180", "Letterheads (1000)|70|190"]),
    "office": (["Paperworks Office Supply", "DeskPro Supplies", "Clearview Stationers"],
               ["Copy paper A4 (5 reams)|18|34|n", "Toner cartridge|45|140|n", "Desk chair|120|380|n",
                "Whiteboard markers (12)|7|16|n", "Stapler|6|22|n", "Archive boxes (10)|15|35|n"]),
    "saas": (["CloudNest", "Trackly", "Formcraft", "Notewise", "Shipyard Analytics"],
             ["Pro plan - monthly|12|79", "Team plan - annual|240|1200", "Additional seats|8|25|n",
              "Storage add-on 100GB|5|20", "Priority support|30|150"]),
}
TAX_INCLUSIVE = {"UK", "IE", "DE", "FR", "AU", "JP", "CH"}  # where till receipts show tax-inclusive prices
LAYOUT_CATEGORIES = {"invoice": ["design", "it", "print", "office", "hardware"], "receipt": ["grocery", "cafe", "hardware"],
                     "email": ["design", "it", "print"], "online": ["saas", "office"]}
CUSTOMERS = ["Maple Dental Clinic", "Harbor & Co", "Riverbend School", "Altura Logistics", "Sunfield Bakery",
             "Westgate Legal", "Orchid Hotels", "Pinecrest Architects", "Nova Fitness", "Lumen Books"]
PEOPLE = ["Dana", "Chris", "Priya", "Tom", "Aiko", "Lena", "Marco", "Sam", "Ines", "Raj"]
SIGNERS = ["Sam Ortiz", "Mia Keller", "Jon Abara", "Keiko Ito", "Luc Moreau", "Ana Silva", "Ravi Menon"]


# --- Formatting ---------------------------------------------------------------------------------------
def group(digits: str, style: str) -> str:
    if style == "in" and len(digits) > 3:  # Indian grouping: 1,23,45,678
        head, tail = digits[:-3], digits[-3:]
        parts = []
        while len(head) > 2:
            parts.insert(0, head[-2:])
            head = head[:-2]
        return ",".join(([head] if head else []) + parts) + "," + tail
    sep = {"us": ",", "dot": ".", "fr": " ", "ch": "'", "jp": ","}.get(style, ",")
    out = ""
    while len(digits) > 3:
        out, digits = sep + digits[-3:] + out, digits[:-3]
    return digits + out


def money(cents: int, loc: dict, symbol: str | None) -> str:
    """An amount in minor units (yen for JPY) as the locale writes it, with `symbol` (a template) or bare."""
    style, sign = loc["money"], "-" if cents < 0 else ""
    cents = abs(cents)
    if style == "jp":
        text = group(str(cents), style)
    else:
        decimal = "," if style in ("dot", "fr") else "."
        text = group(str(cents // 100), style) + decimal + f"{cents % 100:02d}"
    return sign + (symbol.format(text) if symbol else text)


def fmt_date(d: dt.date, style: str) -> str:
    return {"us_num": f"{d.month:02d}/{d.day:02d}/{d.year}", "us_long": f"{MONTHS[d.month - 1]} {d.day}, {d.year}",
            "us_short": f"{MONTHS[d.month - 1][:3]} {d.day}, {d.year}", "iso": d.isoformat(),
            "dmy_slash": f"{d.day:02d}/{d.month:02d}/{d.year}", "long_dmy": f"{d.day} {MONTHS[d.month - 1]} {d.year}",
            "short_dmy": f"{d.day:02d} {MONTHS[d.month - 1][:3]} {d.year}", "dmy_dot": f"{d.day:02d}.{d.month:02d}.{d.year}",
            "ymd_slash": f"{d.year}/{d.month:02d}/{d.day:02d}", "dmy_dash": f"{d.day:02d}-{d.month:02d}-{d.year}"}[style]


def as_number(cents: int, loc: dict) -> float:
    return float(cents) if loc["money"] == "jp" else round(cents / 100, 2)


# --- Facts ------------------------------------------------------------------------------------------------
@dataclass
class Doc:
    layout: str
    locale: str
    loc: dict
    category: str
    vendor: str
    number: str | None
    date: dt.date
    due: dt.date | None
    due_text: str  # how the due date is written: a date, "Net 30", "Due on receipt", or ""
    items: list[tuple[str, int, int, int]]  # description, quantity, unit price, amount (minor units)
    subtotal: int
    discount: int
    shipping: int
    taxes: list[tuple[str, int]]  # one or two tax lines (label, amount)
    total: int
    symbol: str | None
    date_style: str
    extras: dict = field(default_factory=dict)

    @property
    def tax(self) -> int:
        return sum(t for _, t in self.taxes)

    def reference(self) -> dict:
        return {"vendor": self.vendor, "invoice_number": self.number, "date": self.date.isoformat(),
                "due_date": self.due.isoformat() if self.due else None, "currency": self.loc["currency"],
                "subtotal": as_number(self.subtotal, self.loc), "tax": as_number(self.tax, self.loc),
                "total": as_number(self.total, self.loc)}


def price(rng: random.Random, low: float, high: float, loc: dict) -> int:
    value = rng.uniform(low, high) * loc["rate"]
    if loc["money"] == "jp":
        return max(10, round(value / 10) * 10)
    if loc["currency"] == "INR":
        return max(1, round(value)) * 100
    if high >= 100:
        return round(value / 5) * 500  # services: whole multiples of 5
    return max(5, round(value * 100) // 10 * 10 + rng.choice([0, 5, 9]))


def invoice_number(rng: random.Random, d: dt.date, layout: str) -> str | None:
    if layout == "receipt":
        if rng.random() < 0.15:
            return None
        return rng.choice([f"{rng.randint(1, 99):04d}-{rng.randint(1000, 9999)}", f"R{d:%Y%m%d}{rng.randint(1, 999):03d}",
                           str(rng.randint(100000, 999999))])
    if layout == "online":
        return rng.choice([f"{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}", f"INV-{rng.randint(10000, 99999)}"])
    return rng.choice([f"INV-{d.year}-{rng.randint(1, 999):04d}", f"{d.year}/{rng.randint(1, 400)}",
                       f"F-{rng.randint(1, 9999):06d}", str(rng.randint(1000, 99999)),
                       f"{rng.choice('ABCDEFGH')}-{rng.randint(1000, 9999)}"])


def make_doc(rng: random.Random, layout: str, locale: str) -> Doc:
    loc = LOCALES[locale]
    category = rng.choice(LAYOUT_CATEGORIES[layout])
    names, catalogue = CATEGORIES[category]
    suffix = rng.choice(loc["suffix"]) if layout in ("invoice", "email") else ""
    vendor = f"{rng.choice(names)} {suffix}".strip()
    date = dt.date(2024, 1, 1) + dt.timedelta(days=rng.randrange(730))
    n_items = rng.randint(2, 7) if layout == "receipt" else rng.randint(1, 4)
    items = []
    for spec in rng.sample(catalogue, min(n_items, len(catalogue))):
        name, low, high, *unit = spec.split("|")
        unit_price = price(rng, float(low), float(high), loc)
        qty = rng.randint(2, 24) if unit == ["h"] else rng.randint(1, 6) if unit == ["n"] else \
            (rng.choice([1, 1, 1, 2, 3]) if layout == "receipt" else 1)
        items.append((name, qty, unit_price, qty * unit_price))
    subtotal = sum(i[3] for i in items)
    discount_pct = rng.choice([5, 10, 15]) if layout in ("invoice", "online") and rng.random() < 0.2 else 0
    discount = subtotal * discount_pct // 100
    if loc["money"] == "jp":
        discount = discount // 10 * 10
    shipping = price(rng, 4, 15, loc) if layout == "online" and category == "office" and rng.random() < 0.6 else 0
    label, rates = rng.choice(loc["tax"])
    rate = rng.choice(rates)
    if layout != "receipt" and locale == "US" and rng.random() < 0.12:
        rate = 0  # tax-exempt services
    taxable = subtotal - discount + shipping
    inclusive = layout == "receipt" and locale in TAX_INCLUSIVE and rng.random() < 0.65
    if inclusive:  # shelf prices include tax: the items add up to the total; the till prints net and tax
        tax = round(subtotal * rate / (100 + rate))
        taxes, total, subtotal = [(label.format(r=f"{rate:g}"), tax)], subtotal, subtotal - tax
    elif locale == "IN" and rng.random() < 0.5:  # intra-state GST is printed as two halves
        half = round(taxable * rate / 200)
        taxes = [(f"CGST {rate / 2:g}%", half), (f"SGST {rate / 2:g}%", half)]
    else:
        taxes = [(label.format(r=f"{rate:g}"), round(taxable * rate / 100))]
    if not inclusive:
        total = taxable + sum(t for _, t in taxes)
    due, due_text = None, ""
    if layout in ("invoice", "email"):
        terms = rng.choice([None, None, None, 14, 30, 45, 0])
        if terms is None:
            due = date + dt.timedelta(days=rng.choice([7, 10, 14, 21, 30]))
        else:
            due = date + dt.timedelta(days=terms)
            due_text = "Due on receipt" if terms == 0 else f"Net {terms}"
    date_style = rng.choice(loc["dates"])
    symbol = rng.choice(loc["symbols"])
    doc = Doc(layout, locale, loc, category, vendor, invoice_number(rng, date, layout), date, due, due_text,
              items, subtotal, discount, shipping, taxes, total, symbol, date_style)
    doc.extras = {"street": rng.choice(STREETS), "city": rng.choice(loc["cities"]), "customer": rng.choice(CUSTOMERS),
                  "person": rng.choice(PEOPLE), "signer": rng.choice(SIGNERS), "po": f"PO-{rng.randint(10000, 99999)}",
                  "order": f"{rng.randint(100, 999)}-{rng.randint(1000000, 9999999)}",
                  "customer_id": f"C{rng.randint(1000, 9999)}", "discount_pct": discount_pct, "inclusive": inclusive,
                  "phone": f"{loc['dial']} {rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}", "tax_id": f"{rng.randint(100, 999)} "
                  f"{rng.randint(1000, 9999)} {rng.randint(10, 99)}", "time": f"{rng.randint(7, 21):02d}:{rng.randint(0, 59):02d}",
                  "paid": round(total * rng.uniform(0.2, 0.6)) // 100 * 100 if layout == "invoice" and rng.random() < 0.25 else 0, "tender": rng.choice(["CASH", "CARD", "CARD"]),
                  "variant": rng.randrange(3)}
    return doc


# --- Layouts ------------------------------------------------------------------------------------------
def m(doc: Doc, cents: int, bare: bool = False) -> str:
    return money(cents, doc.loc, None if bare else doc.symbol)


def d(doc: Doc, day: dt.date) -> str:
    return fmt_date(day, doc.date_style)


def due_line(doc: Doc) -> str:
    if doc.due_text:
        return f"Payment terms: {doc.due_text}"
    return f"{'Due Date' if doc.extras['variant'] else 'Payment due'}: {d(doc, doc.due)}"


def totals_block(doc: Doc, width: int) -> list[str]:
    rows = [("Subtotal", doc.subtotal)]
    if doc.discount:
        rows.append(("Discount", -doc.discount))
    if doc.shipping:
        rows.append(("Shipping", doc.shipping))
    rows += doc.taxes
    rows.append(("TOTAL" if doc.layout == "receipt" else rng_label(doc), doc.total))
    return [f"{label}:".rjust(width - 17) + m(doc, value).rjust(17) for label, value in rows]


def rng_label(doc: Doc) -> str:
    return ["Total", "Total due", "Invoice total"][doc.extras["variant"]]


def render_invoice(doc: Doc) -> str:
    x = doc.extras
    label = ["Invoice No.", "Invoice #", "Invoice Number"][x["variant"]]
    lines = [doc.vendor, x["street"], x["city"], f"Tel {x['phone']}  |  Tax ID {x['tax_id']}", "", "INVOICE", "",
             f"{label}: {doc.number}", f"Invoice Date: {d(doc, doc.date)}", due_line(doc)]
    if x["variant"] != 1:
        lines.append(f"PO Number: {x['po']}")
    lines += ["", "Bill To:", x["customer"], f"Customer ID: {x['customer_id']}", "",
              f"{'Description':<34}{'Qty':>4}{'Unit price':>14}{'Amount':>14}"]
    for name, qty, unit, amount in doc.items:
        lines.append(f"{name:<34}{qty:>4}{m(doc, unit, bare=True):>14}{m(doc, amount, bare=True):>14}")
    lines += [""] + totals_block(doc, 66)
    if x["paid"]:
        paid = x["paid"]
        lines += [f"{'Amount paid:':>49}{m(doc, paid):>17}", f"{'Balance due:':>49}{m(doc, doc.total - paid):>17}"]
    if doc.loc.get("hint") and doc.symbol and "{}" == doc.symbol.replace("$", ""):
        lines += ["", doc.loc["hint"]]
    lines += ["", f"Please reference {doc.number} with your payment. Thank you for your business!"]
    return "\n".join(lines)


def render_receipt(doc: Doc) -> str:
    x = doc.extras
    head = doc.vendor.upper()
    lines = [head.center(36), x["street"].center(36), x["city"].center(36), f"Tel {x['phone']}".center(36), ""]
    lines.append(f"{d(doc, doc.date)} {x['time']}   Till {x['variant'] + 1}")
    if doc.number:
        lines.append(["Receipt No: ", "Trans #", "Receipt "][x["variant"]] + doc.number)
    lines.append("")
    for name, qty, unit, amount in doc.items:
        if qty > 1:
            lines.append(f"{qty} x {name} @ {m(doc, unit, bare=True)}"[:36])
            lines.append(m(doc, amount, bare=True).rjust(36))
        else:
            lines.append(f"{name:<24}{m(doc, amount, bare=True):>12}")
    if x["inclusive"]:  # tax-inclusive till: TOTAL first, then the net and tax breakdown
        lines += ["-" * 36, f"{'TOTAL':<20}{m(doc, doc.total):>16}"]
        for label, amount in doc.taxes:
            lines.append(f"  {label}  Net {m(doc, doc.subtotal, bare=True)}  Tax {m(doc, amount, bare=True)}")
    else:
        lines += ["-" * 36, f"{'SUBTOTAL':<20}{m(doc, doc.subtotal):>16}"]
        lines += [f"{label.upper():<20}{m(doc, amount):>16}" for label, amount in doc.taxes]
        lines.append(f"{'TOTAL':<20}{m(doc, doc.total):>16}")
    if x["tender"] == "CASH":
        unit = 1000 if doc.loc["money"] == "jp" else 2000 if doc.loc["currency"] != "INR" else 50000
        tendered = (doc.total // unit + 1) * unit
        lines += [f"{'CASH':<20}{m(doc, tendered, bare=True):>16}", f"{'CHANGE':<20}{m(doc, tendered - doc.total, bare=True):>16}"]
    else:
        lines += [f"{'CARD ****' + str(1000 + x['variant'] * 2311):<20}{m(doc, doc.total, bare=True):>16}"]
    if doc.loc.get("hint") and doc.symbol and "{}" == doc.symbol.replace("$", ""):
        lines.append(doc.loc["hint"])
    lines += ["", f"Thank you for shopping at {doc.vendor}!".center(36)]
    return "\n".join(lines)


def render_email(doc: Doc) -> str:
    x = doc.extras
    greeting = ["Hi", "Hello", "Dear"][x["variant"]]
    lines = [f"Subject: Invoice {doc.number} from {doc.vendor}", "", f"{greeting} {x['person']},", "",
             ["Thanks for your business! Here is the invoice for last month's work.",
              "Please find our invoice for the recent work below.",
              "As agreed, here is the invoice for the project."][x["variant"]], "",
             f"Invoice: {doc.number}", f"Issued: {d(doc, doc.date)}", due_line(doc), ""]
    for name, qty, unit, amount in doc.items:
        detail = f" ({qty} x {m(doc, unit)})" if qty > 1 else ""
        lines.append(f"- {name}{detail}: {m(doc, amount)}")
    lines.append("")
    lines += [f"{label} {m(doc, value)}" for label, value in
              [("Subtotal", doc.subtotal)] + ([("Discount", -doc.discount)] if doc.discount else []) + doc.taxes]
    lines.append(f"{['Total', 'Amount due', 'Total due'][x['variant']]} {m(doc, doc.total)}")
    if doc.loc.get("hint") and doc.symbol and "{}" == doc.symbol.replace("$", ""):
        lines.append(doc.loc["hint"])
    lines += ["", f"Our bank details are on file; please quote {doc.number} as the reference.", "",
              "Best regards,", x["signer"], doc.vendor, x["phone"]]
    return "\n".join(lines)


def render_online(doc: Doc) -> str:
    x = doc.extras
    lines = [f"Your receipt from {doc.vendor}", "",
             f"Order #{x['order']}", f"Invoice number: {doc.number}",
             f"{['Date paid', 'Order date', 'Paid on'][x['variant']]}: {d(doc, doc.date)}",
             f"Payment method: Visa ending in {4000 + x['variant'] * 1234 % 9000}", "", "Summary"]
    for name, qty, unit, amount in doc.items:
        lines.append(f"  {name}{f' x {qty}' if qty > 1 else ''}  {m(doc, amount)}")
    lines += ["", f"  Subtotal  {m(doc, doc.subtotal)}"]
    if doc.discount:
        lines.append(f"  Promo code SAVE{doc.extras['discount_pct']}  {m(doc, -doc.discount)}")
    if doc.shipping:
        lines.append(f"  Shipping  {m(doc, doc.shipping)}")
    lines += [f"  {label}  {m(doc, amount)}" for label, amount in doc.taxes]
    lines += [f"  Amount paid  {m(doc, doc.total)}", ""]
    if doc.loc.get("hint") and doc.symbol and "{}" == doc.symbol.replace("$", ""):
        lines.append(doc.loc["hint"])
    lines += [f"Questions? Contact {doc.vendor} support at support@{doc.vendor.split()[0].lower()}.example.com."]
    return "\n".join(lines)


RENDER = {"invoice": render_invoice, "receipt": render_receipt, "email": render_email, "online": render_online}


# --- Checks -------------------------------------------------------------------------------------------
def check_example(doc: Doc, text: str) -> None:
    """Every reference value can be read back from the text (the rules are the system prompt's)."""
    ref = doc.reference()
    assert ref["vendor"].lower() in text.lower(), ref["vendor"]
    assert ref["invoice_number"] is None or ref["invoice_number"] in text
    assert fmt_date(doc.date, doc.date_style) in text
    if doc.due_text.startswith("Net"):
        assert doc.due == doc.date + dt.timedelta(days=int(doc.due_text.split()[1]))
    elif doc.due_text:
        assert doc.due == doc.date
    elif doc.due:
        assert fmt_date(doc.due, doc.date_style) in text
    assert money(doc.total, doc.loc, None) in text and money(doc.subtotal, doc.loc, None) in text
    assert all(money(t, doc.loc, None) in text for _, t in doc.taxes)
    assert doc.total == doc.subtotal - doc.discount + doc.shipping + doc.tax
    assert sum(i[3] for i in doc.items) == (doc.total if doc.extras["inclusive"] else doc.subtotal)
    if doc.symbol and doc.symbol.replace("$", "") == "{}" and doc.loc["currency"] != "USD":
        assert doc.loc["hint"] in text  # a bare "$" is always explained for CAD and AUD


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def build_split(rng: random.Random, n: int, prefix: str, width: int, exclude: set[str]) -> list[dict]:
    """n examples cycling through every (layout, locale) pair in a shuffled plan; none whose text is in `exclude`."""
    plan = [(LAYOUTS[i % len(LAYOUTS)], sorted(LOCALES)[i // len(LAYOUTS) % len(LOCALES)]) for i in range(n)]
    rng.shuffle(plan)
    rows, seen = [], set(exclude)
    for number, (layout, locale) in enumerate(plan, start=1):
        while True:
            doc = make_doc(rng, layout, locale)
            text = "\n".join(line.rstrip() for line in RENDER[layout](doc).splitlines())
            if normalise(text) not in seen:
                break
        check_example(doc, text)
        seen.add(normalise(text))
        rows.append({"id": f"{prefix}{number:0{width}d}", "layout": layout, "locale": locale, "document": text,
                     "reference": doc.reference()})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    golden = build_split(random.Random(f"{args.seed}:golden"), N_GOLDEN, "ie-g-", 3, set())
    golden_texts = {normalise(r["document"]) for r in golden}
    train = build_split(random.Random(f"{args.seed}:train"), N_TRAIN, "ie-t-", 4, golden_texts)
    train_texts = {normalise(r["document"]) for r in train}
    assert not golden_texts & train_texts, "a golden document leaked into train"
    assert not {r["document"] for r in golden} & {r["document"] for r in train}
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out / "golden.jsonl", golden)
    write_jsonl(args.out / "train.jsonl", train)
    for name, rows in (("golden", golden), ("train", train)):
        layouts = Counter(r["layout"] for r in rows)
        currencies = Counter(r["reference"]["currency"] for r in rows)
        terms = Counter("net terms" if "Payment terms" in r["document"] else "due date" if r["reference"]["due_date"]
                        else "no due date" for r in rows)
        chars = sorted(len(r["document"]) for r in rows)
        print(f"{name}: {len(rows)} examples; layouts " + ", ".join(f"{k} {layouts[k]}" for k in LAYOUTS)
              + f"; chars {chars[0]}-{chars[-1]} (median {chars[len(chars) // 2]})")
        print("  currencies: " + ", ".join(f"{k} {v}" for k, v in sorted(currencies.items()))
              + "; " + ", ".join(f"{k} {v}" for k, v in sorted(terms.items())))


if __name__ == "__main__":
    main()
