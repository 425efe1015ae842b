;; Imports `convergio:platform/keys@0.1.0` and nothing else.
(component
  (import "convergio:platform/keys@0.1.0" (instance
    (export "f" (func (param "x" string) (result string)))
  ))
)
