#!/usr/bin/env bash
# Pull + unpack of the large fixture image (6 gzip layers, ~160 MB unpacked, whiteouts across
# layers) from a loopback registry into an empty store, in one run with its peers:
#   floor   tar -xzf of the same layer blobs from local disk, one after another: the least
#           any unpacker must do, with no network, no hashing and no durability
#   rkt     rkt fetch into an empty store (download, verify, unpack, syncfs, index)
#   podman  podman pull into an empty storage root
#   skopeo  skopeo copy to an OCI layout: download and verify only, no unpack
# then the second pull of a sibling image that shares every layer but the top one.
# Usage: benches/pull.sh   (RUNS=N to change the number of timed runs, default 5)
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-5}

start_registry large=large sibling=large-sibling
mapfile -t LAYERS < <("$FIXTURES" layers large)
mapfile -t SIB_LAYERS < <("$FIXTURES" layers large-sibling)
TOP=${SIB_LAYERS[-1]}

PODMAN="podman --root $WORK/podman/root --runroot $WORK/podman/run --storage-driver overlay \
--events-backend none --cgroup-manager cgroupfs"
fresh="rm -rf $WORK/floor $WORK/store $WORK/podman $WORK/skopeo; mkdir -p $WORK/floor; sync"

echo "== first pull of the large image (empty store) =="
hyperfine --runs "$RUNS" --warmup 1 --prepare "$fresh" --export-json "$WORK/first.json" \
  -n floor "for l in ${LAYERS[*]}; do tar -xzf \$l -C $WORK/floor; done" \
  -n rkt "$RKT --dir $WORK/store --insecure-options=image,http fetch docker://$ADDR/large:latest" \
  -n podman "$PODMAN pull -q --tls-verify=false $ADDR/large:latest" \
  -n skopeo "skopeo copy -q --src-tls-verify=false docker://$ADDR/large:latest oci:$WORK/skopeo:latest"
ratio_table "$WORK/first.json" floor

echo
echo "== second pull: the sibling, sharing all but its top layer =="
have_base="$fresh; mkdir -p $WORK/floor2; for l in ${LAYERS[*]}; do tar -xzf \$l -C $WORK/floor; done; \
$RKT --dir $WORK/store --insecure-options=image,http fetch docker://$ADDR/large:latest >/dev/null; \
$PODMAN pull -q --tls-verify=false $ADDR/large:latest >/dev/null; sync"
hyperfine --runs "$RUNS" --prepare "$have_base" --export-json "$WORK/second.json" \
  -n floor "tar -xzf $TOP -C $WORK/floor" \
  -n rkt "$RKT --dir $WORK/store --insecure-options=image,http fetch docker://$ADDR/sibling:latest" \
  -n podman "$PODMAN pull -q --tls-verify=false $ADDR/sibling:latest"
ratio_table "$WORK/second.json" floor

# What the second pull downloaded: exactly one layer blob (plus manifest and config).
rm -rf "$WORK/store"
"$RKT" --dir "$WORK/store" --insecure-options=image,http fetch "docker://$ADDR/large:latest" >/dev/null
before=$(find "$WORK/store/store/layers" -mindepth 2 -maxdepth 2 | wc -l)
"$RKT" --dir "$WORK/store" --insecure-options=image,http fetch "docker://$ADDR/sibling:latest" >/dev/null
after=$(find "$WORK/store/store/layers" -mindepth 2 -maxdepth 2 | wc -l)
echo
echo "second pull unpacked $((after - before)) new layer(s) of ${#SIB_LAYERS[@]}"
