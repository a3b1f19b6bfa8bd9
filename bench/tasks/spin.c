/* spin.c - the CPU-bound task of bench/e2e_cpu: spin ITERATIONS rounds of
 * an xorshift generator and print the result (so the loop is not removed).
 * Usage: spin ITERATIONS */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    unsigned long long n, x = 88172645463325252ULL;

    if (argc != 2)
        return 2;
    n = strtoull(argv[1], NULL, 10);
    for (unsigned long long i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    printf("%llu\n", x);
    return 0;
}
