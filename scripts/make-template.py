#!/usr/bin/env python3
"""Writes schemas/template.xlsx, the Excel template a county hands to its
townships, from schemas/indicators.toml. With --fill it writes a filled-in
example instead (used as a test fixture).

    python3 -m venv /tmp/xl && /tmp/xl/bin/pip install openpyxl
    /tmp/xl/bin/python scripts/make-template.py schemas/template.xlsx
"""
import sys
import tomllib
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font

ROOT = Path(__file__).resolve().parent.parent


def main():
    out = Path(sys.argv[1])
    fill = "--fill" in sys.argv
    cat = tomllib.loads((ROOT / "schemas" / "indicators.toml").read_text(encoding="utf-8"))
    dims = {d["name"]: d["categories"] for d in cat["dimension"]}
    columns = ["合计"] + dims["类别"] + dims["等级"]
    wb = Workbook()
    ws = wb.active
    ws.title = "月报"
    ws["A1"], ws["D1"] = "乡镇（街道）", "报告期"
    ws["A2"], ws["D2"] = "乡镇代码", "填报日期"
    ws["A3"] = "说明"
    ws["F1"] = "填写说明：报告期写 2026-06；数值只填数字，可写单位（如 4.5万元）；不详留空，不要填 0。"
    for c in ("A1", "D1", "A2", "D2", "A3"):
        ws[c].font = Font(bold=True)
    header = ["指标"] + columns + ["单位"]
    for i, h in enumerate(header, start=1):
        cell = ws.cell(row=5, column=i, value=h)
        cell.font = Font(bold=True)
        cell.alignment = Alignment(horizontal="center")
    for r, ind in enumerate(cat["indicator"], start=6):
        ws.cell(row=r, column=1, value=ind["name"])
        ws.cell(row=r, column=len(header), value=ind["unit"])
    ws.column_dimensions["A"].width = 26
    if fill:
        ws["B1"], ws["E1"] = "大墅鎮", "2026-06"
        ws["E2"] = "2026-07-03"
        ws["B3"] = "肢体类含2名补办"
        rows = {r[0].value: r[0].row for r in ws.iter_rows(min_row=6, max_col=1)}
        def put(name, col, value):
            ws.cell(row=rows[name], column=header.index(col) + 1, value=value)
        put("残疾人证核发", "合计", 20)
        for c, v in zip(dims["类别"], [3, 2, 1, 9, 2, 2, 1]):
            put("残疾人证核发", c, v)
        for c, v in zip(dims["等级"], [4, 6, 5, 5]):
            put("残疾人证核发", c, v)
        put("白内障复明手术", "合计", 12)
        put("重度残疾人护理补贴金额", "合计", "4.5万元")
        put("职业技能培训", "合计", "60多人")
        put("走访慰问", "合计", "___")
        put("慰问金", "合计", "3000元")
        put("危房改造", "合计", "2000元")
    wb.save(out)


if __name__ == "__main__":
    main()
