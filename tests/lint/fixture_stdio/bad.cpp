// A violation tests/lint/no_stdio.sh must report (its CTest entry expects failure).
#include <cstdio>
void say(const char* what) { std::fprintf(stderr, "%s\n", what); }
