#!/bin/sh
# Seeds fuzz/corpus/ (gitignored) from the checked-in test vectors:
#   pdu_decode, pdu_frame    every PDU of src/pdu/testdata/smpp34.json
#                            (pdu_frame also gets all of them back to back)
#   dlr_text                 every receipt text of src/dlr/testdata/dlr-texts.json
#   agent_line               the request lines of proto/agent-protocol.md
#   session_script           a few short scripts (op, arg byte pairs)
# Existing corpus files are kept; seeds are named by content hash.
# Needs jq, xxd and sha1sum. Run from anywhere: sh fuzz/seed.sh
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
corpus="$root/fuzz/corpus"
mkdir -p "$corpus/pdu_decode" "$corpus/pdu_frame" "$corpus/dlr_text" \
    "$corpus/agent_line" "$corpus/session_script" "$corpus/text_plan" "$corpus/reassembly"

# put DIR < bytes: stores stdin under its sha1 in DIR.
put() {
    tmp=$(mktemp)
    cat >"$tmp"
    mv "$tmp" "$1/$(sha1sum "$tmp" | cut -c1-40)"
}

jq -r '.[].hex' "$root/src/pdu/testdata/smpp34.json" | while read -r hex; do
    printf '%s' "$hex" | xxd -r -p | put "$corpus/pdu_decode"
    printf '%s' "$hex" | xxd -r -p | put "$corpus/pdu_frame"
done
jq -r '.[].hex' "$root/src/pdu/testdata/smpp34.json" | tr -d '\n' | xxd -r -p | put "$corpus/pdu_frame"

jq -r '.cases[].text' "$root/src/dlr/testdata/dlr-texts.json" | while IFS= read -r t; do
    printf '%s' "$t" | put "$corpus/dlr_text"
done

grep '^{"id"' "$root/proto/agent-protocol.md" | while IFS= read -r l; do
    printf '%s' "$l" | put "$corpus/agent_line"
done
printf '%s' '{"id":"a","op":"send","service":"support","to":"+447911123456","text":"Hi","agent":"ann","client_ref":"r1"}' | put "$corpus/agent_line"
printf '%s' '{"id":2.5,"op":"end_chat","conversation":18446744073709551615,"agent":"ann"}' | put "$corpus/agent_line"

# session_script: op byte % 8 then an argument byte (see fuzzing::script).
for s in '0000010003000400' '00000000010001000400053c' '0202030304ff0600' '07100102030405060708'; do
    printf '%s' "$s" | xxd -r -p | put "$corpus/session_script"
done
echo "seeded: $(for d in "$corpus"/*; do printf '%s=%s ' "$(basename "$d")" "$(ls "$d" | wc -l)"; done)"
