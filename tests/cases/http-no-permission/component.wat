;; Imports `wasi:http/outgoing-handler@0.2.12` and nothing else.
(component
  (import "wasi:http/outgoing-handler@0.2.12" (instance
    (export "f" (func (param "x" string) (result string)))
  ))
)
