namespace RetriBooru.Modeling.Tokenizers;

/// <summary>Turns a prompt into a fixed-length id sequence for the text encoder.</summary>
public interface IPromptTokenizer
{
    /// <summary>Length of every encoded sequence (padded / truncated), e.g. 77 for CLIP.</summary>
    int MaxLength { get; }
    int VocabSize { get; }
    /// <summary>The ids of one prompt, exactly <see cref="MaxLength"/> long (begin token, tokens, end token, padding).</summary>
    long[] Encode(string prompt);
    /// <summary>Writes the tokenizer's files into a folder (the diffusers <c>tokenizer/</c> folder).</summary>
    void Save(string folder);
}
