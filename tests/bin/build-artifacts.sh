#!/usr/bin/env bash
# Builds the four Lambda artifacts the two documented ways, from the sources, and checks
# them (the CI step of tests/bin/test.sh):
#  1. cargo lambda build --release --output-format zip for the four functions in one cargo
#     invocation (zig, from PyPI's ziglang, links against Lambda's glibc):
#     target/lambda/<function>/bootstrap.zip, what Terraform deploys;
#  2. sam build on infra/sam/template.yaml: its BuildMethod rust-cargolambda runs
#     `cargo lambda build --release --bin <function>` at the workspace root, the same
#     package selection and flags as 1, so cargo finds every unit fresh and the one release
#     build serves both;
#  3. each zip holds exactly one executable `bootstrap` for the architecture, linking only
#     glibc's libraries and no symbol version newer than provided.al2023's glibc (2.34);
#     SAM's bootstrap is the same file; each zip is within its budget in README.md
#     ("Artifact size budget"); sam build relinked nothing.
# ARCH=arm64 builds for arm64 where the aarch64-unknown-linux-gnu target is installed.
# Offline but for the package registries (crates.io, PyPI for aws-sam-cli).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
# shellcheck source=tests/bin/infra-tools.sh
source tests/bin/infra-tools.sh

arch=${ARCH:-x86_64}
# The deployment's functions (functions.json, which both IaC paths are checked against).
mapfile -t functions < <(python3 -c 'import json, sys; print("\n".join(json.load(open(sys.argv[1]))["functions"]))' \
  infra/terraform/modules/control-plane/functions.json)
case "$arch" in
  x86_64) arch_flag=() triple=x86_64-unknown-linux-gnu ;;
  arm64) arch_flag=(--arm64) triple=aarch64-unknown-linux-gnu ;;
  *) echo "build-artifacts: ARCH must be x86_64 or arm64, got $arch" >&2; exit 2 ;;
esac
bins=()
for f in "${functions[@]}"; do bins+=(--bin "$f"); done
target=$(cargo metadata --no-deps --format-version 1 --locked |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
work=$(mktemp -d "${TMPDIR:-/tmp}/signoz-artifacts.XXXXXX")
trap 'rm -rf "$work"' EXIT

started=$SECONDS
echo "== cargo lambda build --release --output-format zip ${arch_flag[*]} (${functions[*]})"
cargo lambda build --release --locked --output-format zip "${arch_flag[@]}" "${bins[@]}"
cargo_s=$((SECONDS - started))

# The linked binaries in deps/ with their modification times: cargo writes one whenever
# it links (cargo-lambda moves the uplifted copy out of release/, so that one comes and goes).
stamps() {
  for f in "${functions[@]}"; do
    find "$target/$triple/release/deps" -maxdepth 1 -type f -name "${f//-/_}-*" ! -name '*.d' -printf '%p %T@\n'
  done | sort
}
built=$(stamps)

started=$SECONDS
sam=$(tool_in_venv sam aws-sam-cli "$SAM_VERSION")
echo "== sam build --beta-features (rust-cargolambda, Architecture=$arch)"
# No AWS account is reached: sam build only reads the template and runs cargo lambda.
AWS_REGION=eu-west-1 AWS_DEFAULT_REGION=eu-west-1 "$sam" build --beta-features \
  --template-file infra/sam/template.yaml --build-dir "$work/sam" \
  --parameter-overrides "Architecture=$arch" > "$work/sam.log" 2>&1 ||
  { tail -n 40 "$work/sam.log" >&2; echo "sam build failed" >&2; exit 1; }
sam_s=$((SECONDS - started))
# sam build keeps cargo's output to itself: a relinked binary shows that its cargo lambda
# call (package selection, features, flags) no longer matches step 1's.
if [ "$(stamps)" != "$built" ]; then
  diff <(echo "$built") <(stamps) >&2 || true
  echo "sam build rebuilt the functions: its cargo lambda invocation no longer matches step 1's" >&2
  exit 1
fi

echo "== artifacts (cargo lambda ${cargo_s} s, sam build ${sam_s} s)"
python3 - "$arch" "$target/lambda" "$work/sam" README.md "${functions[@]}" <<'PY'
import re, struct, sys, zipfile

arch, lambda_dir, sam_dir, readme, *functions = sys.argv[1:]
MACHINE = {"x86_64": 62, "arm64": 183}  # ELF e_machine: EM_X86_64, EM_AARCH64
LAMBDA_GLIBC = (2, 34)  # provided.al2023 (Amazon Linux 2023) ships glibc 2.34
MIB = 1024 * 1024

def budgets(path):
    """function -> budget MiB, from the table under "Artifact size budget" in the README."""
    lines = open(path).read().splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("#") and "Artifact size budget" in l)
    found = {}
    for line in lines[start + 1:]:
        if line.startswith("#"):
            break
        m = re.match(r"\|\s*`([a-z-]+)`\s*\|\s*([0-9.]+)\s*\|", line)
        if m:
            found[m.group(1)] = float(m.group(2))
    return found

def glibc_needed(elf):
    """GLIBC_x.y versions the ELF's dynamic symbols need (its SHT_GNU_verneed section)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise SystemExit("not a 64-bit little-endian ELF")
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", elf, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    versions = set()
    for _, sh_type, _, _, off, _, link, info, _, _ in sections:
        if sh_type != 0x6FFFFFFE:  # SHT_GNU_verneed
            continue
        strtab = sections[link][4]
        name = lambda o: elf[strtab + o:elf.index(b"\0", strtab + o)].decode()
        entry = off
        for _ in range(info):
            _, cnt, _, aux, nxt = struct.unpack_from("<HHIII", elf, entry)
            a = entry + aux
            for _ in range(cnt):
                _, _, _, vna_name, vna_next = struct.unpack_from("<IHHII", elf, a)
                m = re.fullmatch(r"GLIBC_(\d+)\.(\d+)(?:\.\d+)?", name(vna_name))
                if m:
                    versions.add((int(m.group(1)), int(m.group(2))))
                a += vna_next
            entry += nxt
    return versions

def needed_libraries(elf):
    """The DT_NEEDED entries of the ELF's dynamic section."""
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", elf, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    needed = []
    for _, sh_type, _, _, off, size, link, _, _, _ in sections:
        if sh_type != 6:  # SHT_DYNAMIC
            continue
        strtab = sections[link][4]
        for entry in range(off, off + size, 16):
            tag, value = struct.unpack_from("<qQ", elf, entry)
            if tag == 1:  # DT_NEEDED
                needed.append(elf[strtab + value:elf.index(b"\0", strtab + value)].decode())
    return needed

# What glibc itself provides; provided.al2023 has nothing else a binary may count on.
GLIBC_LIBRARIES = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
                   "libutil.so.1", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}

def logical_id(function):
    return "".join(p.capitalize() for p in function.split("-")) + "Function"

limits = budgets(readme)
problems, rows = [], []
for f in functions:
    path = f"{lambda_dir}/{f}/bootstrap.zip"
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        if [i.filename for i in infos] != ["bootstrap"]:
            problems.append(f"{path}: must hold only `bootstrap`, holds {[i.filename for i in infos]}")
            continue
        mode = infos[0].external_attr >> 16
        if not mode & 0o111:
            problems.append(f"{path}: bootstrap is not executable (mode {mode:o}); Lambda cannot start it")
        elf = z.read("bootstrap")
    machine, = struct.unpack_from("<H", elf, 0x12)
    if machine != MACHINE[arch]:
        problems.append(f"{path}: ELF machine {machine}, not {arch}")
    needed = glibc_needed(elf)
    newest = max(needed, default=(0, 0))
    if newest > LAMBDA_GLIBC:
        problems.append(f"{path}: needs GLIBC_{newest[0]}.{newest[1]}, newer than provided.al2023's 2.34")
    foreign = sorted(set(needed_libraries(elf)) - GLIBC_LIBRARIES)
    if foreign:
        problems.append(f"{path}: links {', '.join(foreign)}, which is not part of glibc")
    sam_bootstrap = f"{sam_dir}/{logical_id(f)}/bootstrap"
    try:
        if open(sam_bootstrap, "rb").read() != elf:
            problems.append(f"{sam_bootstrap}: differs from {path}'s bootstrap")
    except FileNotFoundError:
        problems.append(f"{sam_bootstrap}: sam build produced no bootstrap for {f}")
    size = len(open(path, "rb").read()) / MIB
    budget = limits.get(f)
    if budget is None:
        problems.append(f"README.md: no budget for {f} under 'Artifact size budget'")
    elif size > budget:
        problems.append(f"{path}: {size:.1f} MiB is over its budget of {budget:g} MiB (README.md)")
    budget_text = "?" if budget is None else f"{budget:g}"
    rows.append(f"| `{f}` | {budget_text} | {size:.1f} | {len(elf) / MIB:.1f} | GLIBC_{newest[0]}.{newest[1]} |")
print("| function | budget MiB | zip MiB | bootstrap MiB | newest glibc needed |")
print("| --- | --- | --- | --- | --- |")
print("\n".join(rows))
if problems:
    print("\n".join(["artifact problems:"] + [f"  - {p}" for p in problems]), file=sys.stderr)
    sys.exit(1)
print(f"all {len(functions)} artifacts ok ({arch}): one bootstrap each, glibc only and no newer than Lambda's, SAM's the same, within budget")
PY
