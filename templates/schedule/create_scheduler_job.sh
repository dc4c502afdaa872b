#!/usr/bin/env bash
# A Cloud Scheduler job that launches the text Flex Template every Monday at
# 03:00 UTC. Fill in PROJECT, REGION and BUCKET (here and in text_weekly.json),
# then run this once. The scheduler's service account needs
# roles/dataflow.developer and roles/iam.serviceAccountUser on the worker
# service account; "{date}" in output_dir becomes the launch date (UTC), so
# each run writes a new dataset version.
set -euo pipefail
PROJECT="${PROJECT:?set PROJECT}"
REGION="${REGION:?set REGION}"
SCHEDULER_SA="${SCHEDULER_SA:-beamtrain-scheduler@${PROJECT}.iam.gserviceaccount.com}"
HERE="$(cd "$(dirname "$0")" && pwd)"

gcloud scheduler jobs create http beamtrain-text-weekly \
  --project="$PROJECT" --location="$REGION" \
  --schedule="0 3 * * 1" --time-zone="Etc/UTC" \
  --uri="https://dataflow.googleapis.com/v1b3/projects/${PROJECT}/locations/${REGION}/flexTemplates:launch" \
  --http-method=POST \
  --headers="Content-Type=application/json" \
  --message-body-from-file="${HERE}/text_weekly.json" \
  --oauth-service-account-email="$SCHEDULER_SA" \
  --oauth-token-scope="https://www.googleapis.com/auth/cloud-platform" \
  --attempt-deadline=320s
