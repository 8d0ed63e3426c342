// The two React hooks that readme-react-hook.ts uses, with @types/react's signatures, so that
// the README's example is compiled without making React a dependency of this package.
declare module 'react' {
  type Dispatch<A> = (value: A) => void;
  type SetStateAction<S> = S | ((previous: S) => S);
  type Destructor = () => void;
  type EffectCallback = () => void | Destructor;
  type DependencyList = readonly unknown[];
  export function useState<S>(initialState: S | (() => S)): [S, Dispatch<SetStateAction<S>>];
  export function useEffect(effect: EffectCallback, deps?: DependencyList): void;
}
