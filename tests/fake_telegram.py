"""A fake Telegram Bot API server for end-to-end bot tests, and a harness that runs the real bot on it.

`FakeTelegram` is a small stdlib HTTP server on 127.0.0.1 (a thread) speaking enough of the Bot API
for python-telegram-bot: getMe, getUpdates (long poll, short timeout), sendMessage, sendPhoto
(multipart upload), editMessageText, editMessageCaption, editMessageReplyMarkup, answerCallbackQuery,
answerInlineQuery, sendChatAction, deleteWebhook, setMyCommands, getMyCommands, … It checks what real
Telegram checks and the bot could get wrong (the token, HTML that does not parse, callback data over
64 bytes, captions over 1024 characters, "message is not modified", answering a callback or an inline
query twice, inline results with duplicate ids or unknown photos), records every call the bot makes,
and lets tests inject updates (text, commands, replies, stickers, photos, voice, callback queries,
inline queries).

`BotHarness` runs `bot.app.build_application(...)` — the real PTB Application, pointed at the fake
server through `base_url` — on its own event loop in a background thread, like production.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import functools
import html.parser
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

TOKEN = "123456789:AAHfakeTokenForTestsOnly_abcdefghijk"
BOT_ID = 123456789
WEBHOOK_SECRET = "fake-webhook-secret"
BOT_USERNAME = "shiren_test_bot"

_JSON_PARAMS = {"reply_markup", "allowed_updates", "commands", "entities", "reply_parameters",
                "link_preview_options", "scope", "caption_entities", "results", "button"}
_INT_PARAMS = {"chat_id", "message_id", "offset", "limit", "timeout", "reply_to_message_id", "user_id",
               "cache_time"}
_ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre", "a",
                 "tg-spoiler", "span", "blockquote", "tg-emoji"}


class _HTMLCheck(html.parser.HTMLParser):
    """Telegram's HTML rules, roughly: known tags only, properly nested; returns the plain text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []
        self.error: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag not in _ALLOWED_TAGS:
            self.error = self.error or f"unsupported start tag \"{tag}\""
        self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.error = self.error or f"unexpected end tag \"{tag}\""
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def html_to_text(s: str) -> str:
    """Plain text of Telegram HTML; ValueError like Telegram's "can't parse entities"."""
    if re.search(r"&(?![a-zA-Z]+;|#\d+;|#x[0-9a-fA-F]+;)", s):
        raise ValueError("Can't parse entities: unescaped &")
    p = _HTMLCheck()
    p.feed(s)
    p.close()
    if p.error or p.stack:
        raise ValueError(f"Can't parse entities: {p.error or 'unclosed tag ' + p.stack[-1]}")
    return "".join(p.text)


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    t: float = field(default_factory=time.monotonic)
    result: Any = None
    worker: int | None = None  # which bot worker made the call (FakeTelegram(workers=N))

    @property
    def chat_id(self) -> int | None:
        return self.params.get("chat_id")

    @property
    def text(self) -> str:
        """The plain text sent (HTML removed) or a photo's caption, or the callback answer's text."""
        if isinstance(self.result, dict):
            return self.result.get("text") or self.result.get("caption") or ""
        return self.params.get("text", "")

    @property
    def html(self) -> str:
        return self.params.get("text", "")

    @property
    def buttons(self) -> list[str]:
        """All callback_data of the inline keyboard, row by row."""
        kb = self.params.get("reply_markup") or {}
        return [b.get("callback_data", "") for row in kb.get("inline_keyboard", []) for b in row]

    @property
    def reply_to(self) -> int | None:
        rp = self.params.get("reply_parameters") or {}
        return rp.get("message_id") or self.params.get("reply_to_message_id")


class FakeTelegram:
    """The fake Bot API server. Thread-safe; all state is guarded by one condition variable."""

    def __init__(self, token: str = TOKEN, *, max_poll: float = 0.5, workers: int = 0) -> None:
        """`workers` > 0: a load balancer in front of that many bot workers. Worker i polls at
        `api_url_for(i)`; each new update goes to the next live worker in turn (round robin), and
        `down(i)` hands a dead worker's unconfirmed updates to the others (Telegram redelivers what
        was not acknowledged)."""
        self.token = token
        self.workers = workers
        self.queues: list[list[dict]] = [[] for _ in range(workers)]
        self.dead: set[int] = set()
        self._next_worker = 0
        self.pushed: dict[int, dict] = {}
        self.webhooks: list[str] = []
        self.webhook_secret = ""
        self.webhook_deliveries: list[tuple[int, int]] = []  # (update id, worker) accepted
        self.max_poll = max_poll
        self.cond = threading.Condition()
        self.calls: list[Call] = []
        self.updates: list[dict] = []
        self.next_update_id = 1
        self.next_message_id: dict[int, int] = {}
        self.messages: dict[tuple[int, int], dict] = {}
        self.answered: set[str] = set()
        self.next_query_id = 1
        self.files: dict[str, bytes] = {}  # file_id → the uploaded bytes (sendPhoto)
        self.inline_answered: set[str] = set()
        self.commands: list[dict] = []
        self.bot_user = {"id": BOT_ID, "is_bot": True, "first_name": "Shiren", "username": BOT_USERNAME,
                         "can_join_groups": True, "can_read_all_group_messages": False,
                         "supports_inline_queries": True}
        self.requests_seen = 0
        self.paths_seen: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- server ------------------------------------------------------------------------------
    def start(self) -> FakeTelegram:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self._handle(b"")

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                self._handle(self.rfile.read(n) if n else b"")

            def _handle(self, body: bytes):
                status, payload = fake._dispatch(self.path, self.headers.get("Content-Type", ""), body)
                data = json.dumps(payload, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client hung up: not our business
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="fake-telegram", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def api_url(self) -> str:
        """The base_url for PTB: http://127.0.0.1:<port>/bot{token}."""
        return f"http://127.0.0.1:{self.port}/bot{{token}}"

    def api_url_for(self, worker: int) -> str:
        """The base_url for bot worker `worker` behind the fake load balancer."""
        return f"http://127.0.0.1:{self.port}/w{worker}/bot{{token}}"

    def down(self, worker: int) -> None:
        """The balancer's health check found `worker` dead: no more updates go to it, and what it had
        not confirmed goes to the next live workers."""
        with self.cond:
            self.dead.add(worker)
            left, self.queues[worker] = self.queues[worker], []
            for u in left:
                self.queues[self._pick_worker()].append(u)
            self.cond.notify_all()

    def use_webhooks(self, urls: list[str], secret: str) -> None:
        """Deliver updates by POSTing them to the workers' webhooks (round robin), as Telegram does to
        a load balancer that spreads them; a worker that refuses the connection is marked dead and the
        update goes to the next one."""
        with self.cond:
            self.webhooks, self.webhook_secret = list(urls), secret
            self.workers = len(urls)
            self.queues = [[] for _ in urls]

    def _post_update(self, update: dict, worker: int) -> None:
        import urllib.error
        import urllib.request

        for _ in range(self.workers):
            req = urllib.request.Request(self.webhooks[worker], data=json.dumps(update).encode(), method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "X-Telegram-Bot-Api-Secret-Token": self.webhook_secret})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    if r.status == 200:
                        with self.cond:
                            self.webhook_deliveries.append((update["update_id"], worker))
                        return
            except (urllib.error.URLError, OSError):
                pass
            with self.cond:
                self.dead.add(worker)
                worker = self._pick_worker()

    def route_next(self, worker: int) -> None:
        """The next update goes to `worker` (then round robin again)."""
        with self.cond:
            self._next_worker = worker

    def redeliver(self, update_id: int, worker: int) -> None:
        """Deliver update `update_id` again, to `worker` (Telegram retrying a webhook it saw fail)."""
        with self.cond:
            self.queues[worker].append(self.pushed[update_id])
            self.cond.notify_all()

    def _pick_worker(self) -> int:
        for _ in range(self.workers):
            w = self._next_worker % self.workers
            self._next_worker += 1
            if w not in self.dead:
                return w
        raise RuntimeError("no live worker")

    def _dispatch(self, path: str, ctype: str, body: bytes) -> tuple[int, dict]:
        with self.cond:
            self.requests_seen += 1
            self.paths_seen.append(path)
        m = re.match(r"^(?:/w(\d+))?/bot([^/]+)/(\w+)$", path.split("?", 1)[0])
        if not m:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        worker, token, method = m.groups()
        worker = int(worker) if worker is not None else None
        if token != self.token:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        params = self._parse(ctype, body)
        fn = getattr(self, "api_" + method[0].lower() + method[1:], None)
        if fn is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
        try:
            result = fn(params, worker) if method == "getUpdates" else fn(params)
        except ValueError as e:
            return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {e}"}
        if method != "getUpdates":
            with self.cond:
                self.calls.append(Call(method, params, result=result, worker=worker))
                self.cond.notify_all()
        return 200, {"ok": True, "result": result}

    @staticmethod
    def _multipart(ctype: str, body: bytes) -> dict[str, Any]:
        """multipart/form-data (a file upload): plain fields as str, files as bytes."""
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + body)
        out: dict[str, Any] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            out[name] = payload if part.get_filename() else payload.decode()
        return out

    @staticmethod
    def _parse(ctype: str, body: bytes) -> dict[str, Any]:
        if not body:
            return {}
        if "json" in ctype:
            raw = json.loads(body)
        elif "multipart/form-data" in ctype:
            raw = FakeTelegram._multipart(ctype, body)
        else:
            raw = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        out: dict[str, Any] = {}
        for k, v in raw.items():
            if isinstance(v, str) and k in _JSON_PARAMS:
                v = json.loads(v)
            elif isinstance(v, str) and k in _INT_PARAMS and re.fullmatch(r"-?\d+", v):
                v = int(v)
            elif isinstance(v, str) and v in ("true", "false") and k not in ("text", "caption"):
                v = v == "true"
            out[k] = v
        return out

    # ---- Bot API methods ---------------------------------------------------------------------
    def api_getMe(self, p):
        return self.bot_user

    def api_getUpdates(self, p, worker: int | None = None):
        offset = int(p.get("offset") or 0)
        limit = int(p.get("limit") or 100)
        wait = min(float(p.get("timeout") or 0), self.max_poll)
        deadline = time.monotonic() + wait
        with self.cond:
            if worker is not None and self.workers:
                if offset:
                    self.queues[worker] = [u for u in self.queues[worker] if u["update_id"] >= offset]
                while not self.queues[worker] and time.monotonic() < deadline:
                    self.cond.wait(deadline - time.monotonic())
                return [] if worker in self.dead else list(self.queues[worker][:limit])
            if offset:
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
            while not self.updates and time.monotonic() < deadline:
                self.cond.wait(deadline - time.monotonic())
            return list(self.updates[:limit])

    def api_deleteWebhook(self, p):
        return True

    def api_setWebhook(self, p):
        return True

    def api_getWebhookInfo(self, p):
        return {"url": "", "has_custom_certificate": False, "pending_update_count": 0}

    def api_setMyCommands(self, p):
        cmds = p.get("commands") or []
        for c in cmds:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", c.get("command", "")) or not 1 <= len(c.get("description", "")) <= 256:
                raise ValueError("BOT_COMMAND_INVALID")
        self.commands = cmds
        return True

    def api_getMyCommands(self, p):
        return self.commands

    def api_deleteMyCommands(self, p):
        self.commands = []
        return True

    def api_close(self, p):
        return True

    def api_logOut(self, p):
        return True

    def api_sendChatAction(self, p):
        if p.get("action") not in ("typing", "upload_photo", "record_voice", "upload_document"):
            raise ValueError("wrong action")
        return True

    def _check_markup(self, p):
        for row in (p.get("reply_markup") or {}).get("inline_keyboard", []):
            for b in row:
                if len((b.get("callback_data") or "").encode()) > 64 or not b.get("text"):
                    raise ValueError("BUTTON_DATA_INVALID")

    def _plain(self, p) -> str:
        text = p.get("text") or ""
        if not text.strip():
            raise ValueError("message text is empty")
        if len(text) > 4096:
            raise ValueError("message is too long")
        return html_to_text(text) if (p.get("parse_mode") or "").upper() == "HTML" else text

    def api_sendMessage(self, p):
        text = self._plain(p)
        self._check_markup(p)
        chat_id = int(p["chat_id"])
        with self.cond:
            mid = self._new_message_id(chat_id)
            msg = {"message_id": mid, "date": int(time.time()), "chat": self._chat(chat_id),
                   "from": self.bot_user, "text": text}
            if p.get("reply_markup"):
                msg["reply_markup"] = p["reply_markup"]
            self.messages[(chat_id, mid)] = msg
        return msg

    def _caption(self, p) -> str:
        caption = p.get("caption") or ""
        if len(caption) > 1024:
            raise ValueError("message caption is too long")
        return html_to_text(caption) if (p.get("parse_mode") or "").upper() == "HTML" else caption

    def api_sendPhoto(self, p):
        caption = self._caption(p)
        self._check_markup(p)
        photo = p.get("photo")
        chat_id = int(p["chat_id"])
        with self.cond:
            if isinstance(photo, bytes):
                if not photo.startswith(b"\x89PNG") and not photo.startswith(b"\xff\xd8"):
                    raise ValueError("IMAGE_PROCESS_FAILED")
                if len(photo) > 10 * 1024 * 1024:
                    raise ValueError("PHOTO_INVALID_DIMENSIONS")
                file_id = f"AgACphoto{len(self.files) + 1}"
                self.files[file_id] = photo
            elif isinstance(photo, str) and photo in self.files:
                file_id = photo
            else:
                raise ValueError("wrong file identifier/HTTP URL specified")
            mid = self._new_message_id(chat_id)
            msg = {"message_id": mid, "date": int(time.time()), "chat": self._chat(chat_id),
                   "from": self.bot_user,
                   "photo": [{"file_id": file_id, "file_unique_id": file_id + "u", "width": 320, "height": 320}]}
            if caption:
                msg["caption"] = caption
            if p.get("reply_markup"):
                msg["reply_markup"] = p["reply_markup"]
            self.messages[(chat_id, mid)] = msg
        return msg

    def api_editMessageCaption(self, p):
        caption = self._caption(p)
        self._check_markup(p)
        with self.cond:
            msg = self.messages.get((int(p["chat_id"]), int(p["message_id"])))
            if msg is None:
                raise ValueError("message to edit not found")
            if "photo" not in msg:
                raise ValueError("there is no caption in the message to edit")
            markup = p.get("reply_markup")
            if msg.get("caption", "") == caption and msg.get("reply_markup") == markup:
                raise ValueError("message is not modified: specified new message content and reply markup "
                                 "are exactly the same as a current content and reply markup of the message")
            msg["caption"] = caption
            msg["edit_date"] = int(time.time())
            if markup:
                msg["reply_markup"] = markup
            else:
                msg.pop("reply_markup", None)
            return dict(msg)

    def api_answerInlineQuery(self, p):
        qid = str(p.get("inline_query_id"))
        results = p.get("results") or []
        if isinstance(results, str):
            results = json.loads(results)
        if len(results) > 50:
            raise ValueError("RESULTS_TOO_MUCH")
        ids = [r.get("id") for r in results]
        if len(set(ids)) != len(ids) or any(not i or len(str(i).encode()) > 64 for i in ids):
            raise ValueError("RESULT_ID_DUPLICATE")
        for r in results:
            kind = r.get("type")
            if kind == "article":
                content = r.get("input_message_content") or {}
                text = content.get("message_text") or ""
                if not text.strip() or not r.get("title"):
                    raise ValueError("MESSAGE_EMPTY")
                if (content.get("parse_mode") or "").upper() == "HTML":
                    html_to_text(text)
            elif kind == "photo":
                if r.get("photo_file_id") not in self.files:
                    raise ValueError("PHOTO_INVALID")
                self._caption(r)
            else:
                raise ValueError(f"unsupported result type {kind}")
            self._check_markup(r)
        with self.cond:
            if qid in self.inline_answered:
                raise ValueError("query is too old and response timeout expired or query ID is invalid")
            self.inline_answered.add(qid)
        return True

    def api_editMessageText(self, p):
        text = self._plain(p)
        self._check_markup(p)
        with self.cond:
            msg = self.messages.get((int(p["chat_id"]), int(p["message_id"])))
            if msg is None:
                raise ValueError("message to edit not found")
            markup = p.get("reply_markup")
            if msg.get("text") == text and msg.get("reply_markup") == markup:
                raise ValueError("message is not modified: specified new message content and reply markup "
                                 "are exactly the same as a current content and reply markup of the message")
            msg["text"] = text
            msg["edit_date"] = int(time.time())
            if markup:
                msg["reply_markup"] = markup
            else:
                msg.pop("reply_markup", None)
            return dict(msg)

    def api_editMessageReplyMarkup(self, p):
        self._check_markup(p)
        with self.cond:
            msg = self.messages.get((int(p["chat_id"]), int(p["message_id"])))
            if msg is None:
                raise ValueError("message to edit not found")
            if p.get("reply_markup"):
                msg["reply_markup"] = p["reply_markup"]
            else:
                msg.pop("reply_markup", None)
            return dict(msg)

    def api_deleteMessage(self, p):
        with self.cond:
            self.messages.pop((int(p["chat_id"]), int(p["message_id"])), None)
        return True

    def api_answerCallbackQuery(self, p):
        qid = str(p.get("callback_query_id"))
        with self.cond:
            if qid in self.answered:
                raise ValueError("query is too old and response timeout expired or query ID is invalid")
            self.answered.add(qid)
        if len(p.get("text") or "") > 200:
            raise ValueError("MESSAGE_TOO_LONG")
        return True

    # ---- building updates --------------------------------------------------------------------
    def _new_message_id(self, chat_id: int) -> int:
        mid = self.next_message_id.get(chat_id, 1)
        self.next_message_id[chat_id] = mid + 1
        return mid

    @staticmethod
    def user(user_id: int) -> dict:
        return {"id": user_id, "is_bot": False, "first_name": f"User{user_id}", "language_code": "zh"}

    @staticmethod
    def _chat(chat_id: int) -> dict:
        if chat_id < 0:
            return {"id": chat_id, "type": "supergroup", "title": "诗社"}
        return {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"}

    def _push(self, kind: str, obj: dict) -> int:
        with self.cond:
            uid = self.next_update_id
            self.next_update_id += 1
            if self.webhooks:
                self.pushed[uid] = {"update_id": uid, kind: obj}
                threading.Thread(target=self._post_update, args=(self.pushed[uid], self._pick_worker()),
                                 daemon=True).start()
            elif self.workers:
                self.pushed[uid] = {"update_id": uid, kind: obj}
                self.queues[self._pick_worker()].append(self.pushed[uid])
            else:
                self.updates.append({"update_id": uid, kind: obj})
            self.cond.notify_all()
            return uid

    def send(self, user_id: int, text: str | None = None, *, chat_id: int | None = None,
             reply_to: dict | None = None, **extra) -> dict:
        """Inject a message from `user_id` (in their private chat unless `chat_id`); returns it.

        A text starting with / gets a bot_command entity, as Telegram sends it."""
        chat_id = user_id if chat_id is None else chat_id
        with self.cond:
            msg = {"message_id": self._new_message_id(chat_id), "date": int(time.time()),
                   "chat": self._chat(chat_id), "from": self.user(user_id)}
            if text is not None:
                msg["text"] = text
                if text.startswith("/"):
                    cmd = text.split(maxsplit=1)[0]
                    msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(cmd)}]
            if reply_to is not None:
                msg["reply_to_message"] = reply_to
            msg.update(extra)
            self.messages[(chat_id, msg["message_id"])] = msg
        self._push("message", msg)
        return msg

    def send_sticker(self, user_id: int) -> dict:
        return self.send(user_id, sticker={"file_id": "CAACstk", "file_unique_id": "stk1", "type": "regular",
                                           "width": 512, "height": 512, "is_animated": False,
                                           "is_video": False})

    def send_photo(self, user_id: int) -> dict:
        return self.send(user_id, photo=[{"file_id": "AgACph", "file_unique_id": "ph1", "width": 90,
                                          "height": 90}])

    def send_voice(self, user_id: int) -> dict:
        return self.send(user_id, voice={"file_id": "AwACvc", "file_unique_id": "vc1", "duration": 2})

    def edit(self, user_id: int, message: dict, text: str) -> None:
        """Inject an edited_message update (the bot should not answer edits)."""
        m = dict(message, text=text, edit_date=int(time.time()))
        self._push("edited_message", m)

    def press(self, user_id: int, message: dict | Call, data: str) -> str:
        """Inject a callback query: `user_id` presses a button with `data` under `message` (a bot
        message, as a dict or the sendMessage Call). Returns the query id."""
        if isinstance(message, Call):
            message = message.result
        with self.cond:
            current = self.messages.get((message["chat"]["id"], message["message_id"]), message)
            qid = f"q{self.next_query_id}"
            self.next_query_id += 1
        self._push("callback_query", {"id": qid, "from": self.user(user_id), "chat_instance": "ci-1",
                                      "data": data, "message": dict(current)})
        return qid

    def inline(self, user_id: int, query: str) -> str:
        """Inject an inline query: `user_id` types "@bot <query>" in some chat. Returns the query id."""
        with self.cond:
            qid = f"iq{self.next_query_id}"
            self.next_query_id += 1
        self._push("inline_query", {"id": qid, "from": self.user(user_id), "query": query, "offset": "",
                                    "chat_type": "supergroup"})
        return qid

    def ask_inline(self, user_id: int, query: str, timeout: float = 30.0) -> Call:
        """Type an inline query and return the bot's answerInlineQuery for it."""
        mark = self.mark()
        qid = self.inline(user_id, query)
        return self.wait("answerInlineQuery", since=mark, timeout=timeout,
                         where=lambda c: str(c.params.get("inline_query_id")) == qid)[0]

    # ---- inspecting --------------------------------------------------------------------------
    def mark(self) -> int:
        with self.cond:
            return len(self.calls)

    def find(self, method: str | None = None, *, chat_id: int | None = None, since: int = 0,
             where=None) -> list[Call]:
        with self.cond:
            return [c for c in self.calls[since:]
                    if (method is None or c.method == method)
                    and (chat_id is None or c.chat_id == chat_id)
                    and (where is None or where(c))]

    def wait(self, method: str, *, chat_id: int | None = None, since: int = 0, where=None, count: int = 1,
             timeout: float = 30.0) -> list[Call]:
        """Block until `count` matching calls exist (after `since`); AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [c for c in self.calls[since:]
                         if c.method == method and (chat_id is None or c.chat_id == chat_id)
                         and (where is None or where(c))]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {count}× {method} to {chat_id}: got "
                                         f"{len(found)}; last calls {[(c.method, c.text[:30]) for c in self.calls[since:]][-12:]}")
                self.cond.wait(left)

    def ask(self, user_id: int, text: str, timeout: float = 30.0, **kw) -> Call:
        """Send `text` and return the bot's first sendMessage to that chat afterwards."""
        mark = self.mark()
        msg = self.send(user_id, text, **kw)
        chat = msg["chat"]["id"]
        return self.wait("sendMessage", chat_id=chat, since=mark, timeout=timeout)[0]

    def click(self, user_id: int, message, data: str, timeout: float = 30.0) -> Call:
        """Press a button and return the answerCallbackQuery call for it."""
        mark = self.mark()
        qid = self.press(user_id, message, data)
        return self.wait("answerCallbackQuery", since=mark, timeout=timeout,
                         where=lambda c: str(c.params.get("callback_query_id")) == qid)[0]

    def quiet(self, seconds: float = 0.6, since: int | None = None, chat_id: int | None = None) -> list[Call]:
        """Wait `seconds` and return the calls made meanwhile (e.g. to assert the bot stayed silent)."""
        mark = self.mark() if since is None else since
        time.sleep(seconds)
        return self.find(chat_id=chat_id, since=mark)


class BotHarness:
    """Runs the real Application (polling the fake server) on its own event loop in a thread."""

    def __init__(self, fake: FakeTelegram, config, *, killable: bool = False, webhook_port: int | None = None,
                 **build_kw) -> None:
        self.fake = fake
        self.killable = killable
        self.webhook_port = webhook_port  # receive updates on 127.0.0.1:<port>/hook instead of polling
        self._killed = False
        self.config = config
        self.build_kw = build_kw
        self.app = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 60.0) -> BotHarness:
        self._thread = threading.Thread(target=self._run, name="bot-under-test", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the bot did not start")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        if not self.killable:
            try:
                asyncio.run(self._main())
            except BaseException as e:  # noqa: BLE001 — surfaced by start()
                self._error = e
                self._ready.set()
            return
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main())
        except BaseException as e:  # noqa: BLE001 — surfaced by start()
            if self._killed:
                return  # a dead process: its tasks, leases and connections are left as they are
            self._error = e
            self._ready.set()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    def kill(self) -> None:
        """Stop the bot's event loop dead, mid-whatever: no finally blocks, no shutdown, no lease
        released (a worker process killed with SIGKILL, as far as the database and Telegram can tell)."""
        self._killed = True
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    async def _main(self) -> None:
        from bot.app import build_application

        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = self.app = build_application(self.config, **self.build_kw)
        await app.initialize()
        if app.post_init:
            await app.post_init(app)
        await app.start()
        if self.webhook_port is not None:
            await app.updater.start_webhook(listen="127.0.0.1", port=self.webhook_port, url_path="hook",
                                            secret_token=WEBHOOK_SECRET)
        else:
            await app.updater.start_polling(poll_interval=0.0, timeout=1,
                                            allowed_updates=["message", "callback_query", "inline_query"])
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await app.updater.stop()
            await app.stop()
            if app.post_shutdown:
                await app.post_shutdown(app)
            await app.shutdown()

    def call(self, coro, timeout: float = 30.0):
        """Run a coroutine on the bot's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None and not self._killed:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(30)


@functools.lru_cache(maxsize=1)
def shared_tiny_poet():
    """One tiny random-weight Poet for the whole test session (it takes seconds to build)."""
    from core.testing import tiny_poet_with_critic

    return tiny_poet_with_critic(seed=0, max_pending=512)


def make_config(fake: FakeTelegram, **kw):
    from bot.config import BotConfig

    kw.setdefault("admin_ids", frozenset({1}))
    return BotConfig(token=fake.token, api_url=fake.api_url, **kw)


class RunningBot:
    """A fake server, a fresh SQLite Store (or the database at `url`) and the bot, started together
    (use as a context manager)."""

    def __init__(self, db_dir, *, retrain=None, reload=None, url: str | None = None, **config_kw) -> None:
        from db.store import Store

        self.fake = FakeTelegram().start()
        self.store = Store(url or f"sqlite:///{db_dir}/t.db")
        self.config = make_config(self.fake, **config_kw)
        self.harness = BotHarness(self.fake, self.config, poet=shared_tiny_poet(), store=self.store,
                                  retrain=retrain, reload=reload)

    def __enter__(self) -> RunningBot:
        try:
            self.harness.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.harness.stop()
        self.fake.stop()
        self.store.close()

    @property
    def bot_data(self) -> dict:
        return self.harness.app.bot_data

    def user_id(self, tg_user: int) -> int:
        return self.store.ensure_user("telegram", str(tg_user))

    def poem(self, tg_user: int, topic: str = "春", timeout: float = 60.0) -> Call:
        """Ask for a poem on `topic` and return the sendMessage carrying it (asserts it came)."""
        reply = self.fake.ask(tg_user, topic, timeout=timeout)
        assert any(b.startswith("r:") for b in reply.buttons), reply.text
        return reply


def poem_id(call: Call) -> int:
    """The poem id behind a poem message (from its ⭐ buttons)."""
    return int(next(b for b in call.buttons if b.startswith("r:")).split(":")[1])
