/** React glue for feeds. */

import { useEffect, useState } from "react";
import type { Feed, FeedUpdate } from "./data/feed";

export function useFeed<T>(feed: Feed<T> | null): FeedUpdate<T> {
  const [update, setUpdate] = useState<FeedUpdate<T>>({ status: "connecting" });
  useEffect(() => {
    if (feed === null) return undefined;
    setUpdate({ status: "connecting" });
    return feed.subscribe(setUpdate);
  }, [feed]);
  return update;
}
