#!/bin/sh
# The certificates and configs of the three-site example (README.md):
# a trust domain, and for each site — edge1, edge2, cloud — its identities
# (router, capsule server, and in the cloud the resolver), their
# memberships, and its configs filled in from the templates beside this
# script. Also the operator's own probe identity for ./check.sh.
#
#   EDGE1_HOST=192.0.2.11 EDGE2_HOST=192.0.2.12 CLOUD_HOST=192.0.2.10 ./certs.sh OUT
#
# writes OUT/domain (the domain key: keep it offline), OUT/edge1, OUT/edge2,
# OUT/cloud (copy each to its site: keys/ to /var/lib/gdp/keys, the rest
# to /etc/gdp — set INSTALL_DIR=/etc/gdp and KEYS_DIR=/var/lib/gdp/keys so
# the configs name those paths) and OUT/ops (the probe and sites.yaml).
# Without INSTALL_DIR the configs name the files where they are in OUT, to
# try everything on one machine.
#
# Settings (environment), with their defaults:
#   EDGE1_HOST, EDGE2_HOST, CLOUD_HOST   192.0.2.11, 192.0.2.12, 192.0.2.10 (IPv4 addresses)
#   <SITE>_TUNNEL 8009  <SITE>_ADMIN 8019  <SITE>_METRICS 8029  <SITE>_DHT 8011
#   CLOUD_RESOLVER_API 8021  CLOUD_RESOLVER_DHT 8013
#   MEMBER_LIFETIME 72h (renew at half-life: gdp cert renew, docs/OPERATIONS.md §1.2)
#   GDP (the gdp binary) gdp
set -eu
OUT=${1:?usage: certs.sh OUT}
HERE=$(cd "$(dirname "$0")" && pwd)
GDP=${GDP:-gdp}
: "${EDGE1_HOST:=192.0.2.11}" "${EDGE2_HOST:=192.0.2.12}" "${CLOUD_HOST:=192.0.2.10}"
for s in EDGE1 EDGE2 CLOUD; do
	eval ": \"\${${s}_TUNNEL:=8009}\" \"\${${s}_ADMIN:=8019}\" \"\${${s}_METRICS:=8029}\" \"\${${s}_DHT:=8011}\""
done
: "${CLOUD_RESOLVER_API:=8021}" "${CLOUD_RESOLVER_DHT:=8013}" "${MEMBER_LIFETIME:=72h}"
if [ -e "$OUT/domain" ]; then
	echo "certs.sh: $OUT/domain exists: this would make a second domain; remove $OUT or choose another directory" >&2
	exit 1
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# nameof FILE: the name of a metadata file (gdp cert inspect --json).
nameof() { "$GDP" cert inspect --json "$1" | sed -n 's/^  "name": "\(.*\)",$/\1/p'; }
peerof() { "$GDP" cert inspect --json "$1" | sed -n 's/^  "peer_id": "\(.*\)",$/\1/p'; }

# 1. The domain operator creates the trust domain (once; keep its key offline).
"$GDP" cert --keystore "$OUT/domain/keys" new-domain --alias acme \
	--description "three-sites example domain" --out "$OUT/domain/acme.meta"

# 2. Each site creates its identities in its own keystore and sends the
#    .meta files to the domain operator, who issues their memberships.
#    (Here all in one place; only .meta and .member files ever travel.)
issue() { # site alias kind
	"$GDP" cert --keystore "$OUT/$1/keys" keygen --kind "$3" --alias "$2" \
		--description "$2, site $1" --out "$OUT/$1/$2.meta" >/dev/null
	"$GDP" cert --keystore "$OUT/domain/keys" issue member --domain acme \
		--member "$OUT/$1/$2.meta" --duration "$MEMBER_LIFETIME" --out "$OUT/$1/$2.member"
	cp "$OUT/domain/acme.meta" "$OUT/$1/domain.meta"
}
for site in edge1 edge2 cloud; do
	issue "$site" router router
	issue "$site" capsuled server
done
issue cloud resolver resolver
issue ops ops client  # the operator's probe for ./check.sh

# 3. Every node checks its membership as its daemon will.
for f in edge1/router edge1/capsuled edge2/router edge2/capsuled cloud/router cloud/capsuled cloud/resolver ops/ops; do
	"$GDP" cert verify --trust "$OUT/domain/acme.meta" --node "$OUT/$f.meta" "$OUT/$f.member" >/dev/null
done

# 4. The configs, from the templates: each site's addresses, the names
#    and the resolver's DHT peer ID other configs refer to.
CLOUD_ROUTER=$(nameof "$OUT/cloud/router.meta")
CLOUD_RESOLVER_PEER=$(peerof "$OUT/cloud/resolver.meta")
render() { # site template host prefix
	site=$1
	eval "host=\$${3}_HOST tunnel=\$${3}_TUNNEL admin=\$${3}_ADMIN metrics=\$${3}_METRICS dht=\$${3}_DHT"
	dir=${INSTALL_DIR:-$OUT/$site}
	keys=${KEYS_DIR:-$dir/keys}
	sed -e "s#@DIR@/keys#$keys#g" -e "s#@DIR@#$dir#g" \
		-e "s#@HOST@#$host#g" -e "s#@TUNNEL@#$tunnel#g" -e "s#@ADMIN@#$admin#g" \
		-e "s#@METRICS@#$metrics#g" -e "s#@DHT@#$dht#g" \
		-e "s#@ROUTER@#$(nameof "$OUT/$site/router.meta")#g" \
		-e "s#@CLOUD_ROUTER@#$CLOUD_ROUTER#g" -e "s#@CLOUD_HOST@#$CLOUD_HOST#g" \
		-e "s#@CLOUD_TUNNEL@#$CLOUD_TUNNEL#g" -e "s#@CLOUD_RESOLVER_DHT@#$CLOUD_RESOLVER_DHT#g" \
		-e "s#@CLOUD_RESOLVER_PEER@#$CLOUD_RESOLVER_PEER#g" \
		-e "s#@RESOLVER_API@#$CLOUD_RESOLVER_API#g" -e "s#@RESOLVER_DHT@#$CLOUD_RESOLVER_DHT#g" \
		"$HERE/$site/$2" >"$OUT/$site/$2"
}
render edge1 router.yaml EDGE1
render edge1 capsuled.yaml EDGE1
render edge2 router.yaml EDGE2
render edge2 capsuled.yaml EDGE2
render cloud router.yaml CLOUD
render cloud capsuled.yaml CLOUD
render cloud resolver.yaml CLOUD
sed -e "s#@EDGE1_HOST@#$EDGE1_HOST#g" -e "s#@EDGE2_HOST@#$EDGE2_HOST#g" -e "s#@CLOUD_HOST@#$CLOUD_HOST#g" \
	-e "s#@EDGE1_TUNNEL@#$EDGE1_TUNNEL#g" -e "s#@EDGE1_ADMIN@#$EDGE1_ADMIN#g" -e "s#@EDGE1_METRICS@#$EDGE1_METRICS#g" \
	-e "s#@EDGE2_TUNNEL@#$EDGE2_TUNNEL#g" -e "s#@EDGE2_ADMIN@#$EDGE2_ADMIN#g" -e "s#@EDGE2_METRICS@#$EDGE2_METRICS#g" \
	-e "s#@CLOUD_TUNNEL@#$CLOUD_TUNNEL#g" -e "s#@CLOUD_ADMIN@#$CLOUD_ADMIN#g" -e "s#@CLOUD_METRICS@#$CLOUD_METRICS#g" \
	-e "s#@CLOUD_RESOLVER_API@#$CLOUD_RESOLVER_API#g" -e "s#@CLOUD_ROUTER@#$CLOUD_ROUTER#g" \
	-e "s#@EDGE1_ROUTER@#$(nameof "$OUT/edge1/router.meta")#g" -e "s#@EDGE2_ROUTER@#$(nameof "$OUT/edge2/router.meta")#g" \
	"$HERE/ops/sites.yaml" >"$OUT/ops/sites.yaml"

# 5. What was written (check each on its machine with
#    gdp doctor --config FILE --role router|capsuled|resolver).
for f in edge1/router edge1/capsuled edge2/router edge2/capsuled cloud/router cloud/capsuled cloud/resolver; do
	echo "wrote $OUT/$f.yaml"
done
echo "domain $(nameof "$OUT/domain/acme.meta"); cloud router $CLOUD_ROUTER; cloud resolver peer $CLOUD_RESOLVER_PEER"
echo "next: copy each OUT/<site> to its site and start gdp-resolver (cloud), gdp-router, gdp-capsuled; then ./check.sh $OUT/ops/sites.yaml"
