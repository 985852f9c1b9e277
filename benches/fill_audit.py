"""Appends N chained audit rows to a cmat state database, for BENCHMARKS.md's "The audit
trail's hash chain": python3 benches/fill_audit.py .cmat/state.db 100000. Each digest is
computed as src/audit.rs documents it, independently of cmat's code (length-prefixed parts,
SHA-256), so `cmat audit --verify` calling the trail intact also checks the rule."""
import hashlib, sqlite3, sys
db, n = sys.argv[1], int(sys.argv[2])
conn = sqlite3.connect(db)
def safe(cell):
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell
def link(prev, cells):
    h = hashlib.sha256()
    for part in [prev] + cells:
        b = part.encode()
        h.update(len(b).to_bytes(8, "little")); h.update(b)
    return "sha256:" + h.hexdigest()
row = conn.execute("SELECT id, digest FROM audit ORDER BY id DESC LIMIT 1").fetchone()
last_id, prev = (row if row else (0, ""))
rows = []
for i in range(n):
    at = "2026-11-%02dT06:%02d:%02dZ" % (1 + i % 28, (i // 60) % 60, i % 60)
    values = [f"run-{i // 500}", at, "adjust", "ContractServiceAdjustments", str(4000 + i),
              f"subscription:sub-{i % 997}/item:CFQ7TTC0LH18", "unitChange", "12", str(-(i % 7)),
              "mappings/microsoft.cmat:20", "applied", "200", f"licence count 12 -> {i % 40}"]
    cells = [safe(v) for v in values]
    digest = link(prev, cells)
    rows.append(values[:7] + [values[7], values[8]] + values[9:] + [prev, digest])
    prev = digest
conn.executemany("""INSERT INTO audit (run_id, at, action, entity, autotask_id, key, field, old_value,
    new_value, rule, outcome, http_status, message, prev_digest, digest)
    VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""", rows)
conn.execute("INSERT INTO meta (key, value) VALUES ('audit.chain_head', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
             (f"{last_id + n} {prev}",))
conn.commit()
