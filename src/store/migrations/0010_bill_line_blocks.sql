-- Issue #15: a bill's lines kept in blocks (one BLOB row holds up to 64 KiB of one bill's
-- lines, encoded as `store/line_blocks.rs` describes) instead of one row of 19 columns per
-- line: an import of a million lines was bound by the B-tree inserts of `bill_lines`, and
-- every reader wants a bill's lines in order, never one line by a column.
--
-- The lines of `bill_lines` are moved by the step in Rust that follows this script
-- (`line_blocks::move_lines_into_blocks`), which also drops `bill_lines`. A block's rowid
-- orders a bill's blocks.

CREATE TABLE bill_line_blocks (
    id         INTEGER PRIMARY KEY,
    bill_id    INTEGER NOT NULL REFERENCES bills (id) ON DELETE CASCADE,
    line_count INTEGER NOT NULL,
    lines      BLOB NOT NULL
) STRICT;

CREATE INDEX bill_line_blocks_by_bill ON bill_line_blocks (bill_id);
