#!/usr/bin/env bash
# Fetches the country, ASN and organisation data that package enrich reads:
#
#   scripts/geodata.sh [DATADIR]        (default DATADIR: ./data)
#
# For every package pinned in enrich/geodata.lock it runs `npm pack` into a
# temporary directory, checks the tarball's sha512 against the pinned
# integrity, and puts only the needed files into DATADIR/geo/ (the data files,
# plus each package's license files under DATADIR/geo/licenses/), then writes
# DATADIR/geo/MANIFEST: package versions and integrities, each file's sha256
# and size, and the date. Running it again is a no-op when the manifest
# matches the lock and every file still matches its recorded sha256.
#
# Why pin and hash: the npm copies of ip-location-db
# (@ip-location-db/geo-whois-asn-country-mmdb, @ip-location-db/asn) are
# deprecated upstream and will not be updated forever, and their READMEs warn
# that the data has known errors. The pin keeps builds reproducible, the hash
# makes a changed tarball an error, and enrich.Config takes explicit paths so
# users can point at newer files (e.g. from the project's GitHub releases)
# without this script.
#
# Needs: npm (and so node, used for the hashes), tar. Nothing is run from the
# packages; they contain data only.
set -euo pipefail

top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lock="$top/enrich/geodata.lock"
datadir="${1:-./data}"
geo="$datadir/geo"
manifest="$geo/MANIFEST"

die() { echo "geodata: $*" >&2; exit 1; }
for cmd in npm node tar; do
  command -v "$cmd" >/dev/null || die "$cmd not found (install Node.js with npm)"
done
[ -r "$lock" ] || die "lock file $lock not found"

# hash ALGO FILE prints the digest in base64 (sha512, npm's integrity form)
# or hex (sha256). node is always there with npm, unlike sha512sum/openssl.
hash() {
  node -e '
    const [alg, enc, file] = process.argv.slice(1);
    const h = require("crypto").createHash(alg);
    const s = require("fs").createReadStream(file);
    s.on("data", (d) => h.update(d));
    s.on("error", (e) => { console.error(e.message); process.exit(1); });
    s.on("end", () => process.stdout.write(h.digest(enc)));
  ' "$1" "$2" "$3"
}
sha256() { hash sha256 hex "$1"; }
integrity() { printf 'sha512-%s' "$(hash sha512 base64 "$1")"; }

# Read the lock: name version integrity files.
names=() versions=() integrities=() fileses=()
while read -r name version integ files rest; do
  case "$name" in ''|'#'*) continue ;; esac
  [ -n "$files" ] && [ -z "$rest" ] || die "$lock: malformed line for $name"
  [[ "$integ" == sha512-* ]] || die "$lock: $name: integrity must be sha512-..."
  names+=("$name") versions+=("$version") integrities+=("$integ") fileses+=("$files")
done <"$lock"
[ "${#names[@]}" -gt 0 ] || die "$lock: no packages"

# Is DATADIR/geo already what the lock asks for?
up_to_date() {
  [ -r "$manifest" ] || return 1
  local i f want have
  for i in "${!names[@]}"; do
    grep -qFx "package ${names[$i]} ${versions[$i]} ${integrities[$i]}" "$manifest" || return 1
    for f in ${fileses[$i]//,/ }; do
      [ -f "$geo/$f" ] || return 1
      want="$(awk -v f="$f" '$1 == "file" && $2 == f { print $5; exit }' "$manifest")"
      [ -n "$want" ] || return 1
      have="sha256:$(sha256 "$geo/$f")"
      [ "$want" = "$have" ] || { echo "geodata: $geo/$f changed since it was fetched; fetching again" >&2; return 1; }
    done
  done
}
if up_to_date; then
  echo "geodata: $geo is up to date ($(grep -c '^file ' "$manifest") files, see $manifest)"
  exit 0
fi

mkdir -p "$geo"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/vantage-geodata.XXXXXX")"
stage="$(mktemp -d "$geo/.staging.XXXXXX")" # same file system: the final mv is a rename
trap 'rm -rf "$tmp" "$stage"' EXIT

{
  echo "# Written by scripts/geodata.sh from enrich/geodata.lock; read by package enrich."
  echo "# package NAME VERSION INTEGRITY / file NAME PACKAGE VERSION sha256:HEX SIZE"
  echo "fetched $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$stage/MANIFEST"

for i in "${!names[@]}"; do
  name="${names[$i]}" version="${versions[$i]}" want="${integrities[$i]}"
  echo "geodata: fetching $name@$version"
  out="$tmp/$i"
  mkdir -p "$out"
  tgz="$(cd "$out" && npm pack --silent "$name@$version" | tail -n 1)"
  [ -f "$out/$tgz" ] || die "npm pack $name@$version produced no tarball"
  got="$(integrity "$out/$tgz")"
  [ "$got" = "$want" ] || die "$name@$version: integrity mismatch: got $got, pinned $want in $lock"
  tar -xzf "$out/$tgz" -C "$out"
  echo "package $name $version $want" >>"$stage/MANIFEST"

  lic="$stage/licenses/${name##*/}"
  mkdir -p "$lic"
  for f in "$out"/package/*LICENSE* "$out"/package/MODIFICATIONS "$out"/package/README.md; do
    [ -f "$f" ] && cp "$f" "$lic/"
  done
  for f in ${fileses[$i]//,/ }; do
    [ -f "$out/package/$f" ] || die "$name@$version has no file $f"
    mv "$out/package/$f" "$stage/$f"
    printf 'file %s %s %s sha256:%s %s\n' "$f" "$name" "$version" \
      "$(sha256 "$stage/$f")" "$(wc -c <"$stage/$f" | tr -d ' ')" >>"$stage/MANIFEST"
  done
  rm -rf "$out"
done

# Move into place: data files first, the manifest last, so an interrupted
# run never leaves a manifest that vouches for files it did not write.
rm -f "$manifest"
rm -rf "$geo/licenses"
mv "$stage/licenses" "$geo/licenses"
for f in "$stage"/*; do
  [ "$(basename "$f")" = MANIFEST ] || mv -f "$f" "$geo/"
done
mv "$stage/MANIFEST" "$manifest"
echo "geodata: wrote $geo:"
grep '^file ' "$manifest" | awk '{printf "  %-28s %s@%s %s bytes\n", $2, $3, $4, $6}'
