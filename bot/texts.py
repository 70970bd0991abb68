"""Every user-facing string, in Chinese (default) and English. Telegram HTML: escape what you insert."""

from __future__ import annotations

LANGS = ("zh", "en")

TEXTS: dict[str, dict[str, str]] = {
    "welcome": {
        "zh": "🌙 <b>诗人 Shiren</b> —— 古典诗词的伙伴。\n\n"
              "直接发给我一个题目（如「春夜」），我便以你的默认诗体作一首；"
              "也可用 /poem 选择诗体，/acrostic 藏头，/ci 填词，/continue 续写，/check 检查格律。\n"
              "每首诗下方可以评分（⭐1–⭐5），你的评分会帮助诗人进步。\n\n"
              "/help 查看全部命令 · /settings 设置 · English: tap the button below.",
        "en": "🌙 <b>Shiren 诗人</b> — a classical Chinese poetry companion.\n\n"
              "Send me a topic (e.g. 春夜) and I write a poem in your default form; "
              "or use /poem to pick a form, /acrostic for 藏头诗, /ci for a 词, /continue to go on from "
              "a first line, /check for a 格律 analysis.\n"
              "Rate each poem (⭐1–⭐5): your ratings teach the poet.\n\n"
              "/help lists every command · /settings · 中文：点下面的按钮。",
    },
    "help": {
        "zh": "<b>命令</b>\n"
              "题目（直接发送文字）—— 以默认诗体作诗\n"
              "/poem [题目] —— 选择诗体（五绝 七绝 五律 七律 词）\n"
              "/acrostic 春夏秋冬 —— 藏头诗\n"
              "/ci 浣溪沙 [题目] —— 填词；只发 /ci 浏览词牌\n"
              "/continue 白日依山尽 —— 以首句续写\n"
              "/check 诗句 —— 格律分析（或回复一首诗发 /check）\n"
              "/revise 编号 [句] —— 改写一句（或点诗下的 ✏️）\n"
              "/settings —— 默认诗体、简繁、语言、图片卡片\n"
              "/history [关键词] —— 我的诗与评分\n"
              "/forget —— 删除我的全部数据\n"
              "/start —— 欢迎 · /help —— 本帮助\n"
              "每首诗下的 🖼 把它做成图片卡片；在任何聊天中输入 @{bot} 春夜 即可分享诗。",
        "en": "<b>Commands</b>\n"
              "a topic (plain text) — a poem in your default form\n"
              "/poem [topic] — pick a form (五绝 七绝 五律 七律 词)\n"
              "/acrostic 春夏秋冬 — an acrostic (藏头诗)\n"
              "/ci 浣溪沙 [topic] — a 词; /ci alone browses the 词牌\n"
              "/continue 白日依山尽 — continue from a first line\n"
              "/check poem — 格律 analysis (or reply /check to a poem)\n"
              "/revise ID [LINE] — rewrite one line (or tap ✏️ under a poem)\n"
              "/settings — default form, simplified/traditional, language, picture cards\n"
              "/history [search] — your poems and ratings\n"
              "/forget — delete all your data\n"
              "/start — welcome · /help — this help\n"
              "🖼 under a poem makes it a picture card; type @{bot} 春夜 in any chat to share a poem.",
    },
    "admin_help": {
        "zh": "\n\n<b>管理</b>\n/stats · /retrain · /model list | promote 名称 | rollback",
        "en": "\n\n<b>Admin</b>\n/stats · /retrain · /model list | promote NAME | rollback",
    },
    "lang_button": {"zh": "English", "en": "中文"},
    "busy": {
        "zh": "🙏 诗人正忙，请稍候片刻再试。",
        "en": "🙏 The poet is busy right now; please try again in a moment.",
    },
    "interrupted": {
        "zh": "⚠️ 刚才那位诗人中途停下了，你的请求没有完成（也没有保存）。请再发一次。",
        "en": "⚠️ The worker writing your poem stopped midway; your request was not finished (nothing was "
              "stored). Please send it again.",
    },
    "rate_limited": {
        "zh": "🍵 请慢一点：{seconds} 秒后再请诗人作诗。",
        "en": "🍵 Not so fast: please wait {seconds} s before the next poem.",
    },
    "error": {
        "zh": "抱歉，出了点问题，请稍后再试。",
        "en": "Sorry, something went wrong. Please try again later.",
    },
    "bad_request": {"zh": "⚠️ {message}", "en": "⚠️ {message}"},
    "too_long": {
        "zh": "这段文字太长了（{n} 字），请控制在 {limit} 字以内。",
        "en": "That message is too long ({n} chars); please keep it under {limit}.",
    },
    "topic_too_long": {
        "zh": "题目太长了（{n} 字）。请给一个简短的题目（{limit} 字以内），或用 /check 检查一首诗。",
        "en": "That topic is too long ({n} chars). Send a short topic (up to {limit}) or /check a poem.",
    },
    "text_only": {
        "zh": "我只读文字：请发给我一个题目，或 /help 查看命令。",
        "en": "I only read text: send me a topic, or /help for the commands.",
    },
    "unknown_command": {
        "zh": "未知命令。/help 查看全部命令。",
        "en": "Unknown command. /help lists the commands.",
    },
    "private_only": {
        "zh": "请私聊我使用诗人：点我的名字，发送 /start。",
        "en": "Please talk to me in a private chat: tap my name and send /start.",
    },
    "choose_form": {
        "zh": "选择诗体{topic}：",
        "en": "Choose a form{topic}:",
    },
    "expired": {
        "zh": "这个按钮已过期。",
        "en": "This button has expired.",
    },
    "not_yours": {
        "zh": "这不是你的诗。",
        "en": "That is not your poem.",
    },
    "poem_gone": {
        "zh": "这首诗已不存在。",
        "en": "That poem no longer exists.",
    },
    "rated": {"zh": "已评 {stars} 星", "en": "Rated {stars} ★"},
    "your_rating": {"zh": "你的评分：{stars}", "en": "Your rating: {stars}"},
    "deleted": {"zh": "已删除。", "en": "Deleted."},
    "btn_another": {"zh": "🔄 再来一首", "en": "🔄 Another"},
    "btn_explain": {"zh": "📜 格律", "en": "📜 Explain"},
    "btn_delete": {"zh": "🗑", "en": "🗑"},
    "btn_card": {"zh": "🖼", "en": "🖼"},
    "btn_revise": {"zh": "✏️", "en": "✏️"},
    "btn_line": {"zh": "第{n}句", "en": "Line {n}"},
    "revise_pick": {
        "zh": "改写哪一句？其余不变，格律依旧。",
        "en": "Which line should I rewrite? The rest stays, and so does every 格律 rule.",
    },
    "revise_usage": {
        "zh": "用法：/revise 诗的编号 [第几句] —— 改写一句，其余不变（编号见 /history）。",
        "en": "Usage: /revise POEM_ID [LINE] — rewrite one line, keeping the rest (ids in /history).",
    },
    "revised_from": {"zh": "✏️ 改写自 #{pid} 第{line}句", "en": "✏️ Line {line} of #{pid}, rewritten"},
    "critic_doubts": {"zh": "🧐 评点：最可斟酌的字 {chars}", "en": "🧐 The critic doubts {chars}"},
    "card_no_font": {
        "zh": "🖼 图片卡片暂不可用：服务器没有安装楷体字体（fonts-lxgw-wenkai）。诗以文字发送。",
        "en": "🖼 Picture cards are unavailable: the server has no 楷 font installed (fonts-lxgw-wenkai). "
              "The poem comes as text.",
    },
    "card_sending": {"zh": "正在制作卡片…", "en": "Drawing the card…"},
    "delivery_text": {"zh": "文字", "en": "text"},
    "delivery_card": {"zh": "图片卡片", "en": "picture card"},
    "btn_delivery_text": {"zh": "文字", "en": "Text"},
    "btn_delivery_card": {"zh": "🖼 图片卡片", "en": "🖼 Picture card"},
    "inline_hint": {"zh": "输入题目：春夜 · 七律 秋兴 · 藏头 春夏秋冬", "en": "Type a topic: 春夜 · 七律 秋兴 · 藏头 春夏秋冬"},
    "inline_slow": {"zh": "🍵 请慢一点：{seconds} 秒后再试", "en": "🍵 Not so fast: try again in {seconds} s"},
    "inline_busy": {"zh": "🙏 诗人正忙，请稍后再试", "en": "🙏 The poet is busy; try again in a moment"},
    "inline_rate": {"zh": "⭐ 评分（私聊诗人）", "en": "⭐ Rate it (private chat)"},
    "inline_text_title": {"zh": "{heading} · 文字", "en": "{heading} · text"},
    "inline_card_title": {"zh": "{heading} · 卡片", "en": "{heading} · card"},
    "start_poem": {
        "zh": "这是你在其他聊天中分享的诗，可在下面评分：",
        "en": "Here is the poem you shared in another chat; rate it below:",
    },
    "acrostic_usage": {
        "zh": "用法：/acrostic 春夏秋冬 —— 每句首字依次为这几个字（4 字用绝句，5–8 字用律诗）。",
        "en": "Usage: /acrostic 春夏秋冬 — each line starts with one of these characters "
              "(4 chars: a 绝句, 5–8: a 律诗).",
    },
    "acrostic_too_long": {
        "zh": "藏头最多 8 个字（一首律诗 8 句）。",
        "en": "An acrostic has at most 8 characters (a 律诗 has 8 lines).",
    },
    "continue_usage": {
        "zh": "用法：/continue 白日依山尽 —— 给出五言或七言的首句，我来续写。",
        "en": "Usage: /continue 白日依山尽 — give a first line of 5 or 7 characters and I continue it.",
    },
    "continue_bad_length": {
        "zh": "首句须为五言或七言（现为 {n} 字）。",
        "en": "A first line has 5 or 7 characters (this one has {n}).",
    },
    "ci_browse": {
        "zh": "<b>常用词牌</b>（按《全宋词》作品数排序，第 {page}/{pages} 页）：点一个查看格律并填词。",
        "en": "<b>Common 词牌</b> (by number of poems in 全宋词, page {page}/{pages}): tap one to see its "
              "pattern and write one.",
    },
    "ci_pattern": {
        "zh": "<b>{name}</b>（《全宋词》{count} 首，{length} 字）\n<pre>{pattern}</pre>\n"
              "发送 /ci {name} 题目 来填一首，或点下面的按钮。",
        "en": "<b>{name}</b> ({count} poems in 全宋词, {length} chars)\n<pre>{pattern}</pre>\n"
              "Send /ci {name} topic to write one, or tap the button below.",
    },
    "btn_write_ci": {"zh": "✍️ 填一首{name}", "en": "✍️ Write a {name}"},
    "check_usage": {
        "zh": "用法：/check 后接一首诗（或回复一首诗发送 /check）。可在前面加诗体或词牌，如 /check 浣溪沙 ……",
        "en": "Usage: /check followed by a poem (or reply /check to a poem). You may prefix a form or 词牌, "
              "e.g. /check 浣溪沙 …",
    },
    "settings": {
        "zh": "<b>设置</b>\n默认诗体：{form}\n显示：{script}\n语言：{language}\n发送方式：{delivery}",
        "en": "<b>Settings</b>\nDefault form: {form}\nDisplay: {script}\nLanguage: {language}\nPoems as: {delivery}",
    },
    "script_simplified": {"zh": "简体", "en": "simplified"},
    "script_traditional": {"zh": "繁體", "en": "traditional"},
    "lang_zh": {"zh": "中文", "en": "Chinese"},
    "lang_en": {"zh": "英文", "en": "English"},
    "saved": {"zh": "已保存", "en": "Saved"},
    "history_empty": {
        "zh": "还没有诗。发给我一个题目吧！",
        "en": "No poems yet. Send me a topic!",
    },
    "history_head": {
        "zh": "<b>我的诗</b>{search}（共 {total} 首，第 {page}/{pages} 页）",
        "en": "<b>My poems</b>{search} ({total} in all, page {page}/{pages})",
    },
    "unrated": {"zh": "未评分", "en": "unrated"},
    "forget_confirm": {
        "zh": "确定删除你的全部数据（诗、评分、设置）吗？此操作无法撤销。",
        "en": "Delete all your data (poems, ratings, settings)? This cannot be undone.",
    },
    "btn_forget_yes": {"zh": "确认删除", "en": "Yes, delete"},
    "btn_forget_no": {"zh": "取消", "en": "Cancel"},
    "forgotten": {
        "zh": "你的全部数据已删除。再发消息即重新开始。",
        "en": "All your data has been deleted. Send a message to start afresh.",
    },
    "forget_cancelled": {"zh": "已取消，什么也没有删除。", "en": "Cancelled; nothing was deleted."},
    "retrain_off": {
        "zh": "反馈训练未配置。",
        "en": "Feedback training is not configured.",
    },
    "retrain_started": {"zh": "反馈训练已在后台开始，完成后通知你。", "en": "Feedback training started in the background; I will report when it is done."},
    "retrain_running": {"zh": "反馈训练已在进行中。", "en": "A feedback training round is already running."},
    "retrain_done": {"zh": "✅ 反馈训练完成：\n<pre>{result}</pre>", "en": "✅ Feedback training finished:\n<pre>{result}</pre>"},
    "retrain_failed": {"zh": "❌ 反馈训练失败：{error}", "en": "❌ Feedback training failed: {error}"},
    "model_usage": {
        "zh": "用法：/model list | /model promote 名称 | /model rollback",
        "en": "Usage: /model list | /model promote NAME | /model rollback",
    },
    "model_promoted": {
        "zh": "已启用 {name}（重启后生效，除非已配置热加载）。",
        "en": "Promoted {name} (takes effect on restart unless a reload hook is configured).",
    },
    "model_rolled_back": {"zh": "已回滚到 {name}。", "en": "Rolled back to {name}."},
    "model_no_rollback": {"zh": "没有可回滚的版本。", "en": "Nothing to roll back to."},
    "model_none": {"zh": "还没有适配器版本。", "en": "No adapter versions yet."},
}


def t(lang: str | None, key: str, **kw) -> str:
    """The string `key` in `lang` (zh by default), formatted with `kw`."""
    entry = TEXTS[key]
    s = entry.get(lang or "zh") or entry["zh"]
    return s.format(**kw) if kw else s
