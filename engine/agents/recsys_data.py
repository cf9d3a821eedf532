"""A synthetic shop: items with categories, prices and popularity; users with category tastes;
an interaction log (view, click, purchase) drawn from them with a seed. Also the table helpers
the recommendation agents share (pairs, per-user and per-item features). All data is synthetic.
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from typing import Any

import torch

from engine.agents.table_columns import ITEM_COLUMNS, LOG_COLUMNS, USER_COLUMNS

CATEGORIES = ("books", "electronics", "garden", "toys", "sports", "beauty", "kitchen", "music")
EVENTS = ("view", "click", "purchase")


def item_id(i: int) -> str:
    return f"i{i:04d}"


def user_id(u: int) -> str:
    return f"u{u:04d}"


def generate_log(n_users: int = 300, n_items: int = 200, events_per_user: int = 30,
                 seed: int = 0) -> dict[str, Any]:
    """An interaction log as a table payload, time-ordered per user.

    Each user likes one or two categories; item choice follows taste, a hidden 4-d affinity and
    Zipf-like popularity. Columns: user, item, event, timestamp, category, price.
    """
    g = torch.Generator().manual_seed(seed)
    n_cat = len(CATEGORIES)
    item_cat = torch.randint(0, n_cat, (n_items,), generator=g)
    price = (torch.rand(n_items, generator=g) * 2.5 + 0.5).exp().round(decimals=2)
    popularity = -0.8 * torch.log(torch.arange(1, n_items + 1, dtype=torch.float32))
    popularity = popularity[torch.randperm(n_items, generator=g)]
    taste = torch.full((n_users, n_cat), -1.0)
    favourites = torch.randint(0, n_cat, (n_users, 2), generator=g)
    taste.scatter_(1, favourites[:, :1], 2.5)
    second = torch.rand(n_users, generator=g) < 0.5
    taste[second] = taste[second].scatter(1, favourites[second, 1:], 1.8)
    u_lat = torch.randn(n_users, 4, generator=g)
    i_lat = torch.randn(n_items, 4, generator=g)
    logits = taste[:, item_cat] + popularity + 0.8 * u_lat @ i_lat.T
    counts = torch.poisson(torch.full((n_users,), float(events_per_user)), generator=g).clamp(min=3)
    cols: dict[str, list[Any]] = {k: [] for k in LOG_COLUMNS}
    clock = 0
    for u in range(n_users):
        n = int(counts[u])
        items = torch.multinomial(logits[u].softmax(0), n, replacement=True, generator=g)
        roll = torch.rand(n, generator=g)
        for i, r in zip(items.tolist(), roll.tolist(), strict=True):
            clock += 1
            event = "purchase" if r < 0.15 else "click" if r < 0.45 else "view"
            for key, value in zip(cols, (user_id(u), item_id(i), event, clock,
                                         CATEGORIES[int(item_cat[i])], float(price[i])), strict=True):
                cols[key].append(value)
    return {"columns": cols, "ids": [f"e{k}" for k in range(len(cols["user"]))], "synthetic": True}


def columns_of(table: Any, required: tuple[str, ...]) -> dict[str, list[Any]]:
    """The columns of a table payload (rows as a list of dicts accepted), checking names."""
    if isinstance(table, list):
        table = {"columns": {k: [row.get(k) for row in table] for k in (table[0] if table else {})}}
    if not isinstance(table, dict) or not isinstance(table.get("columns"), dict):
        raise TypeError("expected a table payload {'columns': {...}, 'ids': [...]}")
    cols = table["columns"]
    missing = [c for c in required if c not in cols]
    if missing:
        raise ValueError(f"the interactions table lacks the column(s) {', '.join(missing)}; "
                         f"it has {', '.join(cols)}")
    return {k: (v.tolist() if hasattr(v, "tolist") else list(v)) for k, v in cols.items()}


def log_index(cols: dict[str, list[Any]]) -> tuple[list[str], list[str], list[tuple[int, int]]]:
    """(sorted user ids, sorted item ids, distinct (user, item) index pairs in log order)."""
    users = sorted(set(map(str, cols["user"])))
    items = sorted(set(map(str, cols["item"])))
    u_at = {u: k for k, u in enumerate(users)}
    i_at = {i: k for k, i in enumerate(items)}
    seen: dict[tuple[int, int], None] = {}
    for u, i in zip(cols["user"], cols["item"], strict=True):
        seen.setdefault((u_at[str(u)], i_at[str(i)]), None)
    return users, items, list(seen)


def fingerprint(users: list[str], items: list[str], pairs: list[tuple[int, int]]) -> int:
    """A CRC32 of the ids and pairs: whether a log is the one a model was trained on."""
    text = ",".join(users) + "|" + ",".join(items) + "|" + ";".join(f"{a}:{b}" for a, b in sorted(pairs))
    return zlib.crc32(text.encode())


def leave_last_out(pairs: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Split distinct pairs: each user's last new item (users with >= 3 items) is held out."""
    by_user: dict[int, list[int]] = defaultdict(list)
    for u, i in pairs:
        by_user[u].append(i)
    train, test = [], []
    for u, items in by_user.items():
        if len(items) >= 3:
            test.append((u, items[-1]))
            items = items[:-1]
        train += [(u, i) for i in items]
    return train, test


def user_features(cols: dict[str, list[Any]]) -> dict[str, Any]:
    """Per-user behaviour: events, purchases, purchase rate, distinct items, favourite category
    and its share, mean price looked at, last activity."""
    rows: dict[str, dict[str, Any]] = {}
    cats: dict[str, Counter[str]] = defaultdict(Counter)
    for u, i, e, t, c, p in zip(*(cols[k] for k in ("user", "item", "event", "timestamp",
                                                      "category", "price")), strict=True):
        r = rows.setdefault(u, {"events": 0, "purchases": 0, "items": set(), "price": 0.0, "last": 0})
        r["events"] += 1
        r["purchases"] += e == "purchase"
        r["items"].add(i)
        r["price"] += float(p)
        r["last"] = max(r["last"], int(t))
        cats[u][c] += 1
    users = sorted(rows)
    out: dict[str, list[Any]] = {k: [] for k in USER_COLUMNS}
    for u in users:
        r, (fav, fav_n) = rows[u], cats[u].most_common(1)[0]
        for key, value in zip(out, (u, r["events"], r["purchases"],
                                    round(r["purchases"] / r["events"], 4), len(r["items"]), fav,
                                    round(fav_n / r["events"], 4), round(r["price"] / r["events"], 2),
                                    r["last"]), strict=True):
            out[key].append(value)
    return {"columns": out, "ids": users}


def item_features(cols: dict[str, list[Any]]) -> dict[str, Any]:
    """Per-item features: category, price, distinct users, events, purchases, conversion, rank."""
    rows: dict[str, dict[str, Any]] = {}
    for u, i, e, c, p in zip(*(cols[k] for k in ("user", "item", "event", "category", "price")),
                             strict=True):
        r = rows.setdefault(i, {"category": c, "price": float(p), "users": set(), "events": 0,
                                "purchases": 0})
        r["users"].add(u)
        r["events"] += 1
        r["purchases"] += e == "purchase"
    items = sorted(rows)
    by_pop = sorted(items, key=lambda i: (-len(rows[i]["users"]), i))
    rank = {i: k + 1 for k, i in enumerate(by_pop)}
    out: dict[str, list[Any]] = {k: [] for k in ITEM_COLUMNS}
    for i in items:
        r = rows[i]
        for key, value in zip(out, (i, r["category"], r["price"], len(r["users"]), r["events"],
                                    r["purchases"], round(r["purchases"] / r["events"], 4),
                                    rank[i]), strict=True):
            out[key].append(value)
    return {"columns": out, "ids": items}
