#!/usr/bin/env bash
# End-to-end demo of healthwallet on the embedded defaults, in a throwaway home.
set -euo pipefail
HW=${HW:-healthwallet}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export HEALTHWALLET_HOME="$WORK/patient"
export HEALTHWALLET_PASSPHRASE="demo passphrase, never use it for real"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "1. Create the patient's wallet (identity key in a passphrase-sealed file)"
run $HW init --keystore file

step "2. Import records: a FHIR Bundle and a PDF (both encrypted at rest)"
cat > "$WORK/labs.json" <<'JSON'
{"resourceType": "Bundle", "type": "collection", "entry": [
  {"resource": {"resourceType": "Patient", "id": "demo", "name": [{"family": "Example", "given": ["Demo"]}], "birthDate": "1980-02-01"}},
  {"resource": {"resourceType": "Observation", "id": "hb", "status": "final", "code": {"text": "Hemoglobin"},
   "subject": {"reference": "Patient/demo"}, "effectiveDateTime": "2026-10-01", "valueQuantity": {"value": 13.9, "unit": "g/dL"}}}]}
JSON
printf '%%PDF-1.4\n%% demo discharge letter\n%%%%EOF\n' > "$WORK/letter.pdf"
run $HW record add "$WORK/labs.json" --tag labs
run $HW record add "$WORK/letter.pdf" --label "Discharge letter"
run $HW record list

step "3. Nothing readable at rest: grep the wallet home for the patient's name"
if grep -rq "Example" "$HEALTHWALLET_HOME"; then echo "FOUND plaintext (bug!)"; exit 1; else echo "not found: good"; fi

step "4. Round trip: the exact bytes come back"
FIRST=$($HW record list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["records"][0]["id"])')
run $HW record show "$FIRST" --out "$WORK/labs.out.json"
cmp "$WORK/labs.json" "$WORK/labs.out.json" && echo "identical"

step "5. Health check"
run $HW doctor

step "6. Anchor the records' salted commitments (embedded local ledger: one root per batch)"
run $HW anchor
run $HW anchor status

step "7. A doctor's wallet (the clinician side)"
DOCTOR_HOME="$WORK/doctor"
run $HW --home "$DOCTOR_HOME" init --keystore file
DOCTOR_DID=$($HW --home "$DOCTOR_HOME" id)

step "8. The patient grants the doctor 7 days of access to the lab results"
run $HW grant "$DOCTOR_DID" --tag labs --expires 7d --purpose "second opinion" --out "$WORK/labs.hwgrant"
run $HW grants

step "9. The doctor verifies the grant, then opens it (with the status list the patient sent:
a status list the grant names as a local file is never read; a hosted one, set with
\`config set status-url\`, is fetched over https)"
run $HW status publish --out "$WORK/published"
LIST=$(ls "$WORK/published"/*.json | head -n 1)
run $HW --home "$DOCTOR_HOME" verify "$WORK/labs.hwgrant" --status-list "$LIST"
run $HW --home "$DOCTOR_HOME" open "$WORK/labs.hwgrant" --out "$WORK/from-patient" --status-list "$LIST"

step "10. The patient revokes it: verification now fails (exit 1)"
GRANT_ID=$($HW grants --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["grants"][0]["grant_id"])')
run $HW revoke "$GRANT_ID"
run $HW status publish --out "$WORK/published"
set +e
$HW --home "$DOCTOR_HOME" verify "$WORK/labs.hwgrant" --status-list "$LIST" >/dev/null
echo "verify exit code after revocation: $?"
set -e
run $HW log

step "11. A research group's wallet; the patient previews, then shares de-identified labs"
RESEARCH_HOME="$WORK/research"
run $HW --home "$RESEARCH_HOME" init --keystore file
RESEARCH_DID=$($HW --home "$RESEARCH_HOME" id)
run $HW share "$RESEARCH_DID" --study demo-study --type fhir --dry-run
run $HW share "$RESEARCH_DID" --study demo-study --type fhir --purpose "demo cohort" --out "$WORK/labs.hwshare"
if grep -q -e "Example" -e "1980-02-01" "$WORK/labs.hwshare"; then echo "FOUND identifiers in the share (bug!)"; exit 1; else echo "no name or birth date in the share file: good"; fi

step "12. The research group ingests it (k=1: the demo has a single patient)"
run $HW status publish --out "$WORK/published"
run $HW --home "$RESEARCH_HOME" research ingest "$WORK/labs.hwshare" --k 1 --out "$WORK/dataset" \
  $(for list in "$WORK/published"/*.json; do printf -- '--status-list %s ' "$list"; done)
ls "$WORK/dataset"
if grep -rq -e "Example" -e "1980-02-01" "$WORK/dataset"; then echo "FOUND identifiers in the dataset (bug!)"; exit 1; else echo "no name or birth date in the dataset: good"; fi

step "13. Never lose it: an encrypted backup, restored as if on a new laptop"
export HEALTHWALLET_BACKUP_PASSPHRASE="demo backup passphrase"
run $HW backup --out "$WORK/wallet.hwbackup" --passphrase
run $HW restore "$WORK/wallet.hwbackup" --home "$WORK/new-laptop" --keystore file
run $HW --home "$WORK/new-laptop" doctor
run $HW --home "$WORK/new-laptop" record list

printf '\nDemo finished; the temporary wallet is removed.\n'
