/* playground.S — web/playground.html as read-only data (see playground.h). The Makefile runs
 * the assembler from the source tree's root with -I there, so the path is the file's. */
    .section .rodata
    .balign 16
    .globl playground_html
    .type playground_html, @object
playground_html:
    .incbin "web/playground.html"
playground_html_end:
    .byte 0
    .size playground_html, . - playground_html

    .balign 8
    .globl playground_html_len
    .type playground_html_len, @object
playground_html_len:
    .quad playground_html_end - playground_html
    .size playground_html_len, 8

    .section .note.GNU-stack, "", @progbits
