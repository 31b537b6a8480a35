#ifndef CSVUP_VERSION_H
#define CSVUP_VERSION_H
#define CSVUP_VERSION "0.1.0"
#endif
