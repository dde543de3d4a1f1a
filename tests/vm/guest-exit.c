/*
 * xoq-vm-exit CODE -- the guest's last word: drain the console, then hand CODE to the host.
 *
 * qemu is started with `-device isa-debug-exit,iobase=0xf4,iosize=0x04`: a write of V to port
 * 0xf4 makes qemu exit at once with status (V << 1) | 1, which run.sh maps back to V.
 *
 * Why a program and not `printf ... | dd of=/dev/port`: the console is a 16550 UART driven by
 * interrupts, so whatever the test printed last may still sit in the tty's transmit buffer when
 * the port write kills qemu, and the tail of the log (often the interesting part, and the
 * "exit status" marker) would be lost. tcdrain() blocks until the UART has sent everything.
 *
 * Built static by prepare.sh (gcc -static), so it needs nothing from the guest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/io.h>
#include <termios.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int code = argc > 1 ? atoi(argv[1]) : 0;

	fflush(NULL);
	/* Errors are ignored: stdout may not be a tty (then there is nothing to drain). */
	tcdrain(STDOUT_FILENO);
	tcdrain(STDERR_FILENO);

	if (ioperm(0xf4, 4, 1) != 0) {
		perror("xoq-vm-exit: ioperm(0xf4)");
		return 1;
	}
	outb((unsigned char)code, 0xf4);

	/* Only reached without the isa-debug-exit device (qemu started by hand). */
	fprintf(stderr, "xoq-vm-exit: no isa-debug-exit device at port 0xf4\n");
	return 1;
}
