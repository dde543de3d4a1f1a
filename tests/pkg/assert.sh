# shellcheck shell=bash
# Owns the package tests' assertions and their tally (sourced by tests/pkg/test.sh).
#
#   check DESC CMD...        passes when CMD exits 0 (its output is shown when it fails)
#   check_not DESC CMD...    passes when CMD exits non-zero
#   check_eq DESC GOT WANT   passes when the two strings are equal
#   check_has DESC TEXT SUB  passes when TEXT contains SUB
#   pkg_summary              prints "N passed, M failed" and returns non-zero after a failure

PKG_PASSED=0
PKG_FAILED=0
PKG_FAILURES=()

pkg_pass() {
	PKG_PASSED=$((PKG_PASSED + 1))
	echo "  ok   $1"
}

pkg_fail() {
	PKG_FAILED=$((PKG_FAILED + 1))
	PKG_FAILURES+=("$1")
	echo "  FAIL $1"
	[ -z "${2:-}" ] || printf '%s\n' "$2" | sed 's/^/       | /'
}

check() {
	local desc=$1 out
	shift
	if out=$("$@" 2>&1); then pkg_pass "$desc"; else pkg_fail "$desc" "$out"; fi
}

check_not() {
	local desc=$1 out
	shift
	if out=$("$@" 2>&1); then pkg_fail "$desc (succeeded, should not)" "$out"; else pkg_pass "$desc"; fi
}

check_eq() {
	if [ "$2" = "$3" ]; then
		pkg_pass "$1"
	else
		pkg_fail "$1" "got:  $2
want: $3"
	fi
}

check_has() {
	case $2 in
	*"$3"*) pkg_pass "$1" ;;
	*) pkg_fail "$1" "missing: $3
in: $(printf '%s' "$2" | head -c 2000)" ;;
	esac
}

pkg_summary() {
	echo
	[ ${#PKG_FAILURES[@]} = 0 ] || printf 'failed: %s\n' "${PKG_FAILURES[@]}"
	echo "$PKG_PASSED passed, $PKG_FAILED failed"
	[ "$PKG_FAILED" = 0 ]
}
