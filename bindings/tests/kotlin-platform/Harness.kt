// A tiny test harness (no JUnit offline): checks count to passed/failed, details go to
// stderr, Main.kt prints the one summary line.
package tacit.platform.test

var passed = 0
var failed = 0

/** One check: [cond] must hold; [detail] is printed on failure. */
fun check(name: String, cond: Boolean, detail: Any? = "") {
    if (cond) {
        passed++
        System.err.println("  ok   $name")
    } else {
        failed++
        System.err.println("  FAIL $name $detail")
    }
}

/** [block] must throw an [E]; returns it (null after a failed check). */
inline fun <reified E : Throwable> expectThrows(name: String, block: () -> Any?): E? {
    try {
        val r = block()
        check(name, false, "no error, got $r")
    } catch (e: Throwable) {
        check(name, e is E, "wrong error ${e::class.qualifiedName}: ${e.message}")
        if (e is E) return e
    }
    return null
}

/** Runs a group of checks; an exception escaping it is one failure, not the end of the run. */
inline fun section(name: String, block: () -> Unit) {
    System.err.println("== $name")
    try {
        block()
    } catch (e: Throwable) {
        e.printStackTrace()
        check("$name ran to the end", false, e)
    }
}
