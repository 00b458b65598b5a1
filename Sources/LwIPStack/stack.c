int lwip_stack_placeholder;
