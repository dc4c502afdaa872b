#!/usr/bin/env bash
# Launch the text Flex Template once:
#   PROJECT=my-project REGION=us-central1 BUCKET=my-bucket templates/run_template.sh
set -euo pipefail
PROJECT="${PROJECT:?set PROJECT}"
REGION="${REGION:?set REGION}"
BUCKET="${BUCKET:?set BUCKET}"
IMAGE="${REGION}-docker.pkg.dev/${PROJECT}/${REPO:-beamtrain}/beamtrain:2.77.0"

gcloud dataflow flex-template run "beamtrain-text-$(date -u +%Y%m%d-%H%M%S)" \
  --project="$PROJECT" --region="$REGION" \
  --template-file-gcs-location="gs://${BUCKET}/templates/beamtrain-text.json" \
  --service-account-email="beamtrain-worker@${PROJECT}.iam.gserviceaccount.com" \
  --temp-location="gs://${BUCKET}/tmp" --staging-location="gs://${BUCKET}/staging" \
  --worker-machine-type=n2-standard-8 --num-workers=4 --max-workers=64 \
  --additional-experiments=use_runner_v2 \
  --parameters="input=gs://${BUCKET}/crawl/*.warc.gz" \
  --parameters="output_dir=gs://${BUCKET}/datasets/text/{date}" \
  --parameters="vocab_size=32000" \
  --parameters="sdk_container_image=${IMAGE}"
