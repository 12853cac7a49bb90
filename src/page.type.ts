import { ClassType, Field, Int, ObjectType } from 'type-graphql';

@ObjectType()
export class PageInfo {
  @Field(() => String, { nullable: true })
  endCursor!: string | null;

  @Field()
  hasNextPage!: boolean;
}

/** `XPage { nodes: [X!]! pageInfo: PageInfo! totalCount: Int! }` for any node type X. */
export function PageOf<TNode extends object>(nodeType: ClassType<TNode>) {
  @ObjectType()
  abstract class Page {
    @Field(() => [nodeType])
    nodes!: TNode[];

    @Field(() => PageInfo)
    pageInfo!: PageInfo;

    @Field(() => Int)
    totalCount!: number;
  }
  return Page;
}
